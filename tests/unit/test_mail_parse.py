"""Reading incoming mail: who wrote it (a person or a machine), what it answers, its text and
its attachments, and never an exception for malformed mail."""

from email.message import EmailMessage

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from desk.mail.parse import MAX_ATTACHMENTS, parse

OWN = {"helpdesk@example.com"}


def _raw(**headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = headers.pop("From", "张三 <ZhangSan@Example.com>")
    msg["To"] = "helpdesk@example.com"
    msg["Subject"] = headers.pop("Subject", "打印机坏了")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content("三楼打印机卡纸")
    return msg.as_bytes()


def test_a_person_s_request() -> None:
    got = parse(_raw(Message_ID="<a1@example.com>"), OWN)
    assert got.automatic == "" and got.sender == "zhangsan@example.com"
    assert got.sender_name == "张三" and got.subject == "打印机坏了"
    assert got.message_id == "<a1@example.com>" and "卡纸" in got.text


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({"Auto_Submitted": "auto-replied"}, "Auto-Submitted"),
        ({"Auto_Submitted": "auto-generated"}, "Auto-Submitted"),
        ({"X_Autoreply": "yes"}, "X-Autoreply"),
        ({"X_Autorespond": "on"}, "X-Autorespond"),
        ({"X_Auto_Response_Suppress": "All"}, "X-Auto-Response-Suppress"),
        ({"Precedence": "bulk"}, "Precedence"),
        ({"Precedence": "auto_reply"}, "Precedence"),
        ({"Precedence": "list"}, "Precedence"),
        ({"List_Id": "<news.example.com>"}, "list"),
        ({"Return_Path": "<>"}, "bounce"),
        ({"From": "MAILER-DAEMON@example.com"}, "mailer-daemon"),
        ({"From": "noreply@example.com"}, "noreply"),
        ({"From": "HelpDesk@Example.com"}, "own address"),
        ({"From": ""}, "no sender"),
        ({"From": "a@example.com, b@example.com"}, "no sender"),
    ],
)
def test_machines_and_loops_are_recognised(headers: dict[str, str], why: str) -> None:
    assert why.lower() in parse(_raw(**headers), OWN).automatic.lower()


def test_auto_submitted_no_is_a_person() -> None:
    assert parse(_raw(Auto_Submitted="no"), OWN).automatic == ""


def test_references_nearest_first_and_a_made_up_id_without_one() -> None:
    raw = _raw(In_Reply_To="<c@x>", References="<a@x> <b@x> <c@x>")
    got = parse(raw, OWN)
    assert got.in_reply_to == ("<c@x>", "<b@x>", "<a@x>")
    assert got.message_id.endswith("@no-message-id>")
    assert parse(raw, OWN).message_id == got.message_id  # the same message, the same id


def test_attachments_kept_up_to_the_limits() -> None:
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "a@example.com", "files"
    msg.set_content("see attached")
    for i in range(MAX_ATTACHMENTS + 2):
        msg.add_attachment(f"file {i}".encode(), maintype="application", subtype="octet-stream",
                           filename=f"日志{i}.txt")  # fmt: skip
    got = parse(msg.as_bytes(), OWN)
    assert len(got.attachments) == MAX_ATTACHMENTS and len(got.dropped) == 2
    assert got.attachments[0].filename == "日志0.txt" and got.attachments[0].data == b"file 0"


def test_html_only_mail_gives_its_text() -> None:
    msg = EmailMessage()
    msg["From"], msg["Subject"] = "a@example.com", "html"
    msg.set_content("<p>VPN <b>断了</b></p>", subtype="html")
    assert "VPN" in parse(msg.as_bytes(), OWN).text and "<b>" not in parse(msg.as_bytes(), OWN).text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2000))
def test_garbage_never_raises(raw: bytes) -> None:
    parse(raw, OWN)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.text(max_size=200), st.text(max_size=200), st.text(max_size=80), st.text(max_size=80),
       st.binary(max_size=300))  # fmt: skip
def test_hostile_headers_and_parts_never_raise(
    sender: str, subject: str, disposition: str, ctype: str, body: bytes
) -> None:
    """The standard library's parser raises IndexError, ValueError ... on some of these (a NUL
    in a charset name, an address ending in '@'): parse reads them raw instead."""
    raw = (
        (
            f"From: {sender}\r\nSubject: {subject}\r\nMessage-ID: {subject}\r\n"
            f"Auto-Submitted: {disposition}\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
            f"--x\r\nContent-Type: text/plain; charset={ctype}\r\n\r\nbody\r\n--x\r\n"
            f"Content-Type: {ctype}\r\nContent-Disposition: attachment; filename={disposition}\r\n"
            "Content-Transfer-Encoding: base64\r\n\r\n"
        ).encode("utf-8", "surrogateescape")
        + body
        + b"\r\n--x--\r\n"
    )
    got = parse(raw, OWN)
    assert "\n" not in got.subject and "\r" not in got.sender


def test_a_nul_in_a_charset_still_gives_the_text() -> None:
    raw = b'From: a@example.com\r\nContent-Type: text/plain; charset="x\x00"\r\n\r\nVPN \xe6\x96\xad\r\n'
    assert parse(raw, OWN).text == "VPN 断"
