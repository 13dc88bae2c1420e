"""The user directory: lookup by phone or employee number, updates with history, CSV import."""

import csv
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import String, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from cti.errors import InvalidInput
from cti.ivr.ports import Requester
from cti.phone import NumberPlan, normalize
from desk.models import User, UserChange, UserPhone

FIELDS = ("employee_no", "name", "department", "location", "office_phone", "mobile", "email")
# Column names as Chinese spreadsheets write them.
ALIASES = {
    "工号": "employee_no", "员工编号": "employee_no", "姓名": "name", "部门": "department",
    "地点": "location", "位置": "location", "办公地点": "location", "办公电话": "office_phone",
    "座机": "office_phone", "手机": "mobile", "手机号": "mobile", "邮箱": "email",
    "电子邮件": "email", "特权账号": "privileged", "特权": "privileged",
}  # fmt: skip
# 6.2: a column marking administrator (privileged) accounts, which the desk never resets.
PRIVILEGED = "privileged"
_YES = {"1", "true", "yes", "y", "是"}
_NO = {"", "0", "false", "no", "n", "否"}
# The users table's column sizes: a longer value passes SQLite and fails the insert on PostgreSQL.
MAX_CHARS = {f: cast(String, User.__table__.c[f].type).length or 200 for f in FIELDS}
_EMPLOYEE_NO = re.compile(r"^[A-Za-z0-9_-]{1,40}$")
# One-line fields: a line break or NUL in a name travels into e-mails, exports and PostgreSQL
# (which refuses NUL in text).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def requester_of(user: User) -> Requester:
    """The IVR's view of a user."""
    return Requester(
        user_id=user.id,
        employee_no=user.employee_no,
        name=user.name,
        department=user.department,
        location=user.location,
        office_phone=user.office_phone,
        mobile=user.mobile,
        email=user.email,
    )


def split_phones(raw: str) -> list[str]:
    """Several numbers in one field, separated by ; / , or 、."""
    return [p.strip() for p in re.split(r"[;/,、，；]", raw or "") if p.strip()]


def validate(data: dict[str, str], plan: NumberPlan) -> list[str]:
    """Problems with one user's fields (empty list when valid)."""
    problems = []
    if not _EMPLOYEE_NO.match(data.get("employee_no", "")):
        problems.append("employee_no must be 1-40 letters, digits, - or _")
    if not data.get("name", "").strip():
        problems.append("name is required")
    if data.get("email") and not _EMAIL.match(data["email"]):
        problems.append(f"email {data['email']!r} is not an e-mail address")
    for fld in ("office_phone", "mobile"):
        for number in split_phones(data.get(fld, "")):
            if not normalize(number, plan).usable:
                problems.append(f"{fld} {number!r} is not a phone number or extension")
    for key, value in data.items():
        if _CONTROL.search(value):
            problems.append(f"{key} contains a line break or a control character")
        limit = MAX_CHARS.get(key, 200)
        if len(value) > limit:
            problems.append(f"{key} is longer than {limit} characters")
    return problems


async def _reindex(session: AsyncSession, user: User, plan: NumberPlan) -> None:
    await session.execute(delete(UserPhone).where(UserPhone.user_id == user.id))
    seen: set[str] = set()
    for kind, raw in (("office", user.office_phone), ("mobile", user.mobile)):
        for number in split_phones(raw):
            key = normalize(number, plan).key
            if key and key not in seen:
                seen.add(key)
                session.add(UserPhone(key=key, user_id=user.id, kind=kind))


async def upsert_user(
    session: AsyncSession, data: dict[str, str], *, by: str, now: datetime, plan: NumberPlan
) -> tuple[User, list[str]]:
    """Create or update a user by employee number; changed fields are kept in the history."""
    problems = validate(data, plan)
    if problems:
        raise InvalidInput("; ".join(problems))
    user = await session.scalar(select(User).where(User.employee_no == data["employee_no"]))
    changed: list[str] = []
    if user is None:
        user = User(
            employee_no=data["employee_no"], name=data["name"], created_at=now, updated_at=now
        )
        for fld in FIELDS[2:]:
            setattr(user, fld, data.get(fld, ""))
        session.add(user)
        await session.flush()
        changed = ["created"]
        session.add(UserChange(user_id=user.id, at=now, by=by, field="created", new=user.name))
    else:
        for fld in FIELDS[1:]:
            new = data.get(fld)
            if new is None or new == getattr(user, fld):
                continue
            session.add(UserChange(user_id=user.id, at=now, by=by, field=fld,
                                   old=getattr(user, fld), new=new))  # fmt: skip
            setattr(user, fld, new)
            changed.append(fld)
        if changed:
            user.updated_at = now
    if changed:
        await session.flush()
        await _reindex(session, user, plan)
    return user, changed


async def find_by_key(session: AsyncSession, key: str) -> Sequence[User]:
    """Users reachable at a normalised number."""
    rows = await session.scalars(
        select(User).join(UserPhone, UserPhone.user_id == User.id).where(UserPhone.key == key)
    )
    return rows.unique().all()


async def find_by_employee(session: AsyncSession, employee_no: str) -> User | None:
    """The user with this employee number."""
    return await session.scalar(select(User).where(User.employee_no == employee_no))


@dataclass
class ImportResult:
    """What a CSV import did (or, with errors, would have done: nothing is changed then)."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)


def decode_csv(data: bytes) -> str:
    """UTF-8 (with or without BOM) or GB18030, as Chinese spreadsheets save CSV."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        not_utf8 = exc
    try:
        return data.decode("gb18030")
    except UnicodeDecodeError:
        pass
    # Name where it stops being UTF-8, the likelier intent, so the user can find the line.
    line = data[: not_utf8.start].count(b"\n") + 1
    raise InvalidInput(f"line {line}: the file is neither UTF-8 nor GB18030 text")


def parse_csv(text: str, plan: NumberPlan) -> tuple[list[dict[str, str]], list[str]]:
    """Rows as dicts keyed by our field names, and errors that name the line."""
    # newline="": the csv module itself splits lines at \n, \r\n or a bare \r (as its docs ask),
    # so a bare \r is a line break, not a broken cell.
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
    except csv.Error as exc:  # e.g. a cell over the csv module's size limit
        return [], [f"line 1: {exc}"]
    if header is None:
        return [], ["line 1: empty file"]
    names = [ALIASES.get(h.strip(), h.strip().lower()) for h in header]
    unknown = [h for h in names if h not in FIELDS and h != PRIVILEGED]
    if unknown:
        expected = ", ".join((*FIELDS, PRIVILEGED))
        return [], [f"line 1: unknown columns {', '.join(unknown)} (expected {expected})"]
    for required in ("employee_no", "name"):
        if required not in names:
            return [], [f"line 1: a column {required} is required"]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:  # the later column would silently win over the earlier one
        return [], [f"line 1: columns given twice: {', '.join(repeated)} (or with their alias)"]
    rows, errors, seen = [], [], set()
    end = reader.line_num
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # the reader cannot go on (a cell over its size limit)
            errors.append(f"line {end + 1}: {exc}; the rest of the file was not read")
            break
        # A record starts on the line after the previous one ended: a quoted cell may hold
        # line breaks, and blank lines are skipped, so counting records would name wrong lines.
        line_no, end = end + 1, reader.line_num
        if not cells:
            continue
        data = {n: v.strip() for n, v in zip(names, cells, strict=False)}
        problems = validate(data, plan)
        flag = data.get(PRIVILEGED)
        if flag is not None and flag.lower() not in _YES | _NO:
            problems.append(f"privileged {flag!r} is not yes/no (1/0, 是/否)")
        # A cell past the last column is data with nowhere to go (an unquoted comma, often).
        if len(cells) > len(names) and any(c.strip() for c in cells[len(names) :]):
            problems.append(f"{len(cells)} cells, but the header has {len(names)} columns")
        if data.get("employee_no") in seen:
            problems.append(f"employee_no {data['employee_no']} appears twice")
        seen.add(data.get("employee_no", ""))
        if problems:
            errors.append(f"line {line_no}: " + "; ".join(problems))
        rows.append(data)
    return rows, errors


async def import_users(
    session: AsyncSession, data: bytes, *, by: str, now: datetime, plan: NumberPlan
) -> ImportResult:
    """Import a CSV of users; with any error, nothing is imported."""
    rows, errors = parse_csv(decode_csv(data), plan)
    result = ImportResult(errors=errors)
    if errors:
        return result
    for row in rows:
        flag = row.pop(PRIVILEGED, None)
        user, changed = await upsert_user(session, row, by=by, now=now, plan=plan)
        if flag is not None and user.privileged != (flag.lower() in _YES):
            new = flag.lower() in _YES
            session.add(UserChange(user_id=user.id, at=now, by=by, field=PRIVILEGED,
                                   old=str(user.privileged), new=str(new)))  # fmt: skip
            user.privileged = new
            user.updated_at = now
            changed = changed or [PRIVILEGED]
        if changed == ["created"]:
            result.created += 1
        elif changed:
            result.updated += 1
        else:
            result.unchanged += 1
    return result


def user_json(user: User) -> dict[str, Any]:
    """The public form of a user (6.3.1.2 d)."""
    return {
        "id": user.id,
        "employee_no": user.employee_no,
        "name": user.name,
        "department": user.department,
        "location": user.location,
        "office_phone": user.office_phone,
        "mobile": user.mobile,
        "email": user.email,
    }
