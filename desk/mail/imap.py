"""The desk's mailbox over IMAP (aioimaplib: asyncio-native, so a slow mail server never blocks
the event loop and every command runs under a timeout, without a thread per poll).

One connection per poll: unseen messages are read with BODY.PEEK (they stay unseen until filed,
so a crash in between reads them again, and the Message-ID makes that harmless), then flagged
\\Seen once their transaction has committed."""

import contextlib
import logging
import re
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import aioimaplib

from cti.errors import CtiError

logger = logging.getLogger(__name__)

# A message larger than this is not read (flagged seen, logged): what the desk keeps is bounded.
MAX_MESSAGE = 25 * 1024 * 1024
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


class ImapError(CtiError):
    """The mailbox could not be read."""


@dataclass(frozen=True)
class ImapSettings:
    """Where the desk's mailbox is; an empty host: no e-mail intake."""

    host: str
    port: int
    username: str
    password: str = field(repr=False)
    tls: bool
    mailbox: str = "INBOX"
    timeout: float = 20.0


def _ok(response: object, what: str) -> None:
    result = getattr(response, "result", "")
    if result != "OK":
        lines = b" ".join(bytes(x) for x in getattr(response, "lines", [])[:2])
        raise ImapError(f"IMAP {what}: {result} {lines.decode(errors='replace')[:200]}")


class Mailbox:
    """An open, selected mailbox: `unseen()`, `read(uid)`, `mark_seen(uid)`."""

    def __init__(self, client: aioimaplib.IMAP4, settings: ImapSettings) -> None:
        self.client = client
        self.settings = settings

    async def unseen(self, limit: int) -> list[str]:
        """UIDs of unseen messages, oldest first, at most `limit`."""
        r = await self.client.uid_search("UNSEEN", charset=None)
        _ok(r, "SEARCH")
        first = bytes(r.lines[0]) if r.lines else b""
        return first.decode().split()[:limit]

    async def size(self, uid: str) -> int:
        """The message's size in bytes (0 when the server does not say)."""
        r = await self.client.uid("fetch", uid, "(RFC822.SIZE)")
        _ok(r, "FETCH SIZE")
        m = _SIZE.search(b" ".join(bytes(x) for x in r.lines))
        return int(m.group(1)) if m else 0

    async def read(self, uid: str) -> bytes | None:
        """The whole message, left unseen; None when it is gone or too large."""
        if await self.size(uid) > MAX_MESSAGE:
            logger.warning("mail uid %s is larger than %d bytes: not read", uid, MAX_MESSAGE)
            return None
        r = await self.client.uid("fetch", uid, "(BODY.PEEK[])")
        _ok(r, "FETCH")
        literals = [bytes(x) for x in r.lines if isinstance(x, bytearray)]
        return literals[0] if literals else None

    async def mark_seen(self, uid: str) -> None:
        """Flag the message \\Seen (filed, or deliberately not)."""
        r = await self.client.uid("store", uid, "+FLAGS", "(\\Seen)")
        _ok(r, "STORE")


_FAILURES = (OSError, TimeoutError, aioimaplib.AioImapException)


@asynccontextmanager
async def open_mailbox(settings: ImapSettings) -> AsyncIterator[Mailbox]:
    """Log in and select the mailbox; logs out at the end. ImapError when the server cannot be
    reached or answers badly."""
    where = f"IMAP {settings.host}:{settings.port}"
    client: aioimaplib.IMAP4 | None = None
    try:
        if settings.tls:
            client = aioimaplib.IMAP4_SSL(
                host=settings.host,
                port=settings.port,
                timeout=settings.timeout,
                ssl_context=ssl.create_default_context(),
            )
        else:
            client = aioimaplib.IMAP4(
                host=settings.host, port=settings.port, timeout=settings.timeout
            )
        await client.wait_hello_from_server()
        _ok(await client.login(settings.username, settings.password), "LOGIN")
        _ok(await client.select(settings.mailbox), "SELECT")
        yield Mailbox(client, settings)
    except _FAILURES as exc:
        raise ImapError(f"{where}: {type(exc).__name__}: {exc}") from exc
    finally:
        if client is not None and client.protocol is not None:
            with contextlib.suppress(*_FAILURES):
                if client.get_state() in ("AUTH", "SELECTED"):
                    await client.logout()
            if client.protocol.transport is not None:
                client.protocol.transport.close()
