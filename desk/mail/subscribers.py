"""Subscribers to what the desk publishes (6.4): asking (a confirmation link goes to the address,
and only its owner can follow it), confirming, leaving, and the publication mailed to every
confirmed subscriber whenever it changed since they last got it."""

import logging
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from cti.db import SessionMaker
from desk.i18n import N_, translate
from desk.mail.links import Links
from desk.mail.models import Subscriber
from desk.notify import Mailer
from desk.publish import Publication, mail_text

logger = logging.getLogger(__name__)

_CONFIRM_SUBJECT = N_("Confirm your subscription to the IT service desk's notices")
_CONFIRM_TEXT = N_(
    "Someone asked for the IT service desk's notices (outages, hours, services) to be sent to "
    "this address. To confirm, open: %(url)s  If it was not you, ignore this e-mail."
)
_UNSUBSCRIBE = N_("To stop these e-mails, open: %(url)s")


async def ask(session: AsyncSession, email: str, lang: str, now: datetime) -> Subscriber:
    """Record the wish (unconfirmed until the link is followed); an existing row is kept. One
    INSERT ... ON CONFLICT DO NOTHING first, so parallel asks for one address never collide."""
    email = email.strip().lower()
    dialect = session.get_bind().dialect.name
    ins = postgresql.insert(Subscriber) if dialect == "postgresql" else sqlite.insert(Subscriber)
    await session.execute(
        ins.values(
            email=email,
            language=lang,
            confirmed=False,
            created_at=now,
            confirmed_at=None,
            last_sent_digest="",
        ).on_conflict_do_nothing(index_elements=["email"])
    )
    row = await session.scalar(select(Subscriber).where(Subscriber.email == email))
    assert row is not None
    return row


def confirmation(mailer: Mailer, links: Links, email: str, lang: str) -> EmailMessage:
    """The confirmation e-mail (InvalidInput for an unusable address)."""
    url = links.subscribe_url(email)
    text = "\n\n".join(translate(x, _CONFIRM_TEXT) % {"url": url} for x in ("zh", "en"))
    subject = f"{translate('zh', _CONFIRM_SUBJECT)} / {translate('en', _CONFIRM_SUBJECT)}"
    return mailer.plain(email, subject, text)


async def confirm(session: AsyncSession, email: str, now: datetime) -> bool:
    """The owner followed the link: they receive publications from now on. False when the
    address never asked (or left meanwhile)."""
    email = email.lower()
    await session.execute(
        update(Subscriber)
        .where(Subscriber.email == email, Subscriber.confirmed.is_(False))
        .values(confirmed=True, confirmed_at=now)
    )
    return await session.scalar(select(Subscriber.id).where(Subscriber.email == email)) is not None


async def leave(session: AsyncSession, email: str) -> bool:
    """Unsubscribe; False when the address was not subscribed."""
    result = await session.execute(delete(Subscriber).where(Subscriber.email == email.lower()))
    return bool(getattr(result, "rowcount", 0))


async def send_publication(
    sessions: SessionMaker, mailer: Mailer, links: Links, pub: Publication
) -> int:
    """Mail the publication to each confirmed subscriber who has not had this version; how
    many were sent. A failed send is tried again next round."""
    digest = pub.digest()
    async with sessions() as s:
        due = (
            await s.scalars(
                select(Subscriber).where(
                    Subscriber.confirmed.is_(True), Subscriber.last_sent_digest != digest
                )
            )
        ).all()
    sent = 0
    title = N_("What the IT service desk publishes")
    for sub in due:
        lang = sub.language if sub.language in ("zh", "en") else "zh"
        other = "en" if lang == "zh" else "zh"
        text = (
            f"{mail_text(pub, lang)}\n\n\n{mail_text(pub, other)}\n\n"
            f"{translate(lang, _UNSUBSCRIBE) % {'url': links.unsubscribe_url(sub.email)}}\n"
        )
        subject = f"{translate('zh', title)} / {translate('en', title)}"
        msg = mailer.plain(sub.email, subject, text)
        msg["List-Unsubscribe"] = f"<{links.unsubscribe_url(sub.email)}>"
        error = await mailer.send(msg)
        if error is not None:
            logger.warning("publication to %s: %s", sub.email, error)
            continue
        async with sessions.begin() as s:
            row = await s.get(Subscriber, sub.id)
            if row is not None:
                row.last_sent_digest = digest
        sent += 1
    return sent
