"""A real local SMTP server (aiosmtpd) that keeps what it receives, for e-mail notice tests."""

import email
from collections.abc import Iterator
from contextlib import contextmanager
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller

from cti.sandbox.instance import free_port


class Inbox:
    """An aiosmtpd handler that keeps every message and its envelope recipients."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.recipients: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        self.recipients += list(envelope.rcpt_tos)
        return "250 OK"


@contextmanager
def smtp_server() -> Iterator[tuple[int, Inbox]]:
    """(port, inbox) of an SMTP server on 127.0.0.1 while the block runs."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), ready_timeout=30)
    controller.start()
    try:
        yield controller.port, inbox
    finally:
        controller.stop()
