"""Caller-ID normalisation with libphonenumber."""

import pytest

from cti.phone import NumberKind, NumberPlan, normalize

BEIJING = NumberPlan(area_code="10")


@pytest.mark.parametrize(
    ("raw", "kind", "key"),
    [
        ("13800138000", NumberKind.MOBILE, "+8613800138000"),
        ("+8613800138000", NumberKind.MOBILE, "+8613800138000"),
        ("008613800138000", NumberKind.MOBILE, "+8613800138000"),
        ("+86 138 0013 8000", NumberKind.MOBILE, "+8613800138000"),
        ("01062345678", NumberKind.LANDLINE, "+861062345678"),
        ("010-6234-5678", NumberKind.LANDLINE, "+861062345678"),
        ("62345678", NumberKind.LANDLINE, "+861062345678"),  # local: the desk's area code
        ("075512345678", NumberKind.LANDLINE, "+8675512345678"),
        ("1001", NumberKind.EXTENSION, "ext:1001"),
        ("+14155552671", NumberKind.INTERNATIONAL, "+14155552671"),
        ("", NumberKind.ANONYMOUS, None),
        ("<unknown>", NumberKind.ANONYMOUS, None),
        ("anonymous", NumberKind.ANONYMOUS, None),
        ("<script>alert(1)</script>", NumberKind.INVALID, None),
        ("*#06#", NumberKind.INVALID, None),
        ("12", NumberKind.INVALID, None),
        ("1" * 40, NumberKind.INVALID, None),
    ],
)
def test_normalize(raw: str, kind: NumberKind, key: str | None) -> None:
    n = normalize(raw, BEIJING)
    assert (n.kind, n.key) == (kind, key)


def test_area_code_is_a_setting() -> None:
    assert normalize("62345678", NumberPlan(area_code="21")).key == "+862162345678"


def test_never_raises_on_anything() -> None:
    for raw in ["\x00", "+", "++86", "０１０", "电话", None, " " * 10, "+86-" + "9" * 30]:
        normalize(raw, BEIJING)


def test_a_local_number_takes_the_desks_own_area_code() -> None:
    # At a desk in Shanghai (021), an 8-digit local number is a Shanghai landline, not Beijing's.
    shanghai = NumberPlan(area_code="21")
    assert normalize("62345678", shanghai).key == "+862162345678"
    assert normalize("62345678", BEIJING).key == "+861062345678"
