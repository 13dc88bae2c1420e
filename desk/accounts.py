"""Clause 6.2: a request about an account or its password names the account, and the desk never
acts on a privileged (administrator) account itself: such a request is refused with the reason
said or written to the requester, and routed to the administrators' group of the service
catalogue. The `privileged` flag comes from the directory (CSV import, LDAP sync)."""

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from desk import incidents, sla
from desk.i18n import N_, Msg, translate
from desk.models import Incident, IncidentEvent, IncidentState, User

REFUSAL: Msg = N_(
    "For security, the service desk does not reset passwords of or change administrator "
    "(privileged) accounts. Your request has been passed to the administrators' group, who will "
    "contact you."
)
# Words in a category or symptom that make a request one about an account or its password.
_WORDS = ("密码", "账号", "帐号", "账户", "password", "account", "login", "登录")


@dataclass(frozen=True)
class Account:
    """A directory account a request names."""

    user_id: int
    employee_no: str
    privileged: bool


def is_account_request(category: str, symptom: str = "") -> bool:
    """Whether a request is about an account or its password."""
    text = f"{category} {symptom}".lower()
    return any(w in text for w in _WORDS)


async def find(session: AsyncSession, account: str) -> Account | None:
    """The directory user an account name means: the employee number, the e-mail address, or the
    mailbox name before the @ (case-insensitive)."""
    name = account.strip()
    if not name or len(name) > 200:
        return None
    low = name.lower()
    user = await session.scalar(
        select(User)
        .where(
            or_(
                User.employee_no == name,
                func.lower(User.email) == low,
                func.lower(User.email).like(low.replace("%", "").replace("_", "") + "@%"),
            )
        )
        .order_by(User.id)
        .limit(1)
    )
    return Account(user.id, user.employee_no, user.privileged) if user else None


def refusal(lang: str) -> str:
    """The written reason, in a language."""
    return translate(lang, REFUSAL)


async def guard(
    session: AsyncSession, incident: Incident, policy: sla.Policy, now: datetime
) -> dict[str, str] | None:
    """If the incident names a privileged account: route it to the administrators' group (once)
    and give the reason in both languages; None otherwise."""
    if not incident.account:
        return None
    found = await find(session, incident.account)
    if found is None or not found.privileged:
        return None
    reason = {"zh": refusal("zh"), "en": refusal("en")}
    if incident.escalated_to == policy.admin_group:
        return reason
    session.add(
        IncidentEvent(
            incident_id=incident.id,
            at=now,
            by="6.2",
            kind="privileged",
            text=f"account {incident.account} is privileged: refused, "
            f"routed to {policy.admin_group}",
        )
    )
    current = IncidentState(incident.state)
    if IncidentState.ESCALATED_INCIDENT in incidents.TRANSITIONS[current]:
        await incidents.change_state(
            session,
            incident,
            IncidentState.ESCALATED_INCIDENT,
            by="6.2",
            now=now,
            text=f"→ {policy.admin_group}: privileged account {incident.account}",
        )
    incident.escalated_to = policy.admin_group
    return reason
