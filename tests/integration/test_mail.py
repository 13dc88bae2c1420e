"""E-mail both ways against a real Dovecot (IMAP, the desk's mailbox and the requester's) and a
real SMTP server that delivers into it over LMTP: a request by e-mail becomes an incident, its
requester (from the directory) gets the acknowledgement with the number, replies, and the reply
lands on the incident with its attachment; auto-replies, loops and strangers are handled."""

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from aiohttp.test_utils import TestServer

from cti.phone import NumberPlan
from desk.directory import upsert_user
from desk.web.keys import SESSIONS
from tests.support.db import incident_history, query
from tests.support.dovecot import DovecotServer, relay
from tests.support.staff import add_staff, login
from tests.support.web import desk_server, from_address

DESK = "helpdesk@example.test"
ALICE = "zhangsan@example.test"
STRANGER = "mallory@example.test"
USERS = {DESK: "desk-pw", ALICE: "alice-pw", STRANGER: "mallory-pw"}


@pytest.fixture
def mail_system() -> Iterator[tuple[DovecotServer, int]]:
    """(dovecot, smtp port): mailboxes for the desk, a user and a stranger."""
    dovecot = DovecotServer().start(USERS)
    smtp = relay(dovecot)
    try:
        yield dovecot, smtp.port
    finally:
        smtp.stop()
        dovecot.stop()


def _env(dovecot: DovecotServer, smtp_port: int) -> dict[str, str]:
    return {"CTI_SMTP_HOST": "127.0.0.1", "CTI_SMTP_PORT": str(smtp_port),
            "CTI_SMTP_SENDER": DESK, "CTI_IMAP_HOST": "127.0.0.1",
            "CTI_IMAP_PORT": str(dovecot.imap_port), "CTI_IMAP_USER": DESK,
            "CTI_IMAP_SECRET": USERS[DESK], "CTI_IMAP_TLS": "false",
            "CTI_MAIL_POLL_SECONDS": "1", "CTI_MAIL_OUTBOX_SECONDS": "0.3"}  # fmt: skip


async def _send(port: int, msg: EmailMessage) -> None:
    await aiosmtplib.send(msg, hostname="127.0.0.1", port=port, timeout=10)


def _mail(sender: str, subject: str, text: str, **headers: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, DESK, subject
    msg["Message-ID"] = make_msgid(domain="example.test")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(text)
    return msg


async def _until(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


@pytest.fixture
async def desk(tmp_path: Path, mail_system: tuple[DovecotServer, int]) -> AsyncIterator[TestServer]:
    dovecot, port = mail_system
    async with desk_server(tmp_path, **_env(dovecot, port)) as server:
        async with server.app[SESSIONS].begin() as s:
            await upsert_user(s, {"employee_no": "E1001", "name": "张三", "department": "财务部",
                                  "mobile": "13800138000", "email": ALICE},
                              by="test", now=datetime.now(UTC), plan=NumberPlan(area_code="10"))  # fmt: skip
        yield server


async def test_a_request_by_mail_is_acknowledged_and_the_reply_lands_on_it(
    tmp_path: Path, mail_system: tuple[DovecotServer, int], desk: TestServer
) -> None:
    dovecot, port = mail_system
    await _send(port, _mail(ALICE, "打印机坏了", "三楼的打印机一直卡纸。"))
    rows = await _until(lambda: query(tmp_path, "SELECT * FROM incidents"))
    assert len(rows) == 1, rows
    inc = rows[0]
    number = inc["number"]
    assert inc["channel"] == "email" and inc["requester_email"] == ALICE
    assert inc["requester_name"] == "张三" and "卡纸" in inc["symptom"]

    # The acknowledgement reaches the requester's mailbox, with the number, as a reply.
    got = await dovecot.wait_for(ALICE, 1)
    assert len(got) == 1
    ack = got[0]
    assert number in str(ack["Subject"]) and ack["From"] == DESK
    assert ack["Auto-Submitted"] == "auto-replied" and ack["In-Reply-To"]
    assert number in ack.get_body(preferencelist=("plain",)).get_content()

    # The requester replies (threaded by In-Reply-To), with a photo.
    reply = _mail(ALICE, f"Re: {ack['Subject']}", "补充：是 HP 那台。",
                  In_Reply_To=ack["Message-ID"], References=ack["Message-ID"])  # fmt: skip
    reply.add_attachment(b"\x89PNG fake", maintype="image", subtype="png", filename="卡纸.png")
    await _send(port, reply)
    msgs = await _until(
        lambda: [
            m for m in query(tmp_path, "SELECT * FROM incident_messages") if m["kind"] == "reply"
        ]
    )
    assert len(msgs) == 1 and "HP" in msgs[0]["body"]
    assert len(query(tmp_path, "SELECT * FROM incidents")) == 1  # no second incident
    kinds = [h["kind"] for h in incident_history(tmp_path, number)]
    assert "email" in kinds and "ack" in kinds

    # The agent sees the e-mails on the incident and downloads the attachment.
    async with from_address(desk, "127.0.0.3") as agent:
        await add_staff(desk.app, "agent1", "agent", "1001")
        await login(agent, "agent1")
        r = await agent.get(f"/api/incidents/{number}/messages")
        assert r.status == 200
        listed = (await r.json())["messages"]
        assert [(m["direction"], m["kind"]) for m in listed] == [
            ("in", "request"), ("out", "ack"), ("in", "reply")]  # fmt: skip
        files = listed[2]["attachments"]
        assert [f["filename"] for f in files] == ["卡纸.png"]
        r = await agent.get(f"/api/mail/attachments/{files[0]['id']}")
        assert r.status == 200 and await r.read() == b"\x89PNG fake"
        assert r.headers["Content-Disposition"].startswith("attachment")

    # A reply that names the number in its subject, from the requester, also lands on it.
    await _send(port, _mail(ALICE, f"Re: 事件 {number}", "已经好了，谢谢"))
    msgs = await _until(lambda: len(query(tmp_path, "SELECT * FROM incident_messages "
                                                    "WHERE kind = 'reply'")) == 2)  # fmt: skip
    assert msgs
    # Each message was read once: nothing is left unseen, nothing was filed twice.
    assert len(query(tmp_path, "SELECT * FROM incidents")) == 1


async def test_auto_replies_loops_and_strangers(
    tmp_path: Path, mail_system: tuple[DovecotServer, int], desk: TestServer
) -> None:
    dovecot, port = mail_system
    await _send(port, _mail(ALICE, "Out of office", "I am away", Auto_Submitted="auto-replied"))
    await _send(port, _mail(ALICE, "自动回复", "休假中", X_Autoreply="yes"))
    await _send(port, _mail(ALICE, "list", "digest", Precedence="bulk"))
    await _send(port, _mail(DESK, "loop", "our own mail came back"))
    # A stranger names Alice's incident number in the subject: a new incident of their own,
    # no requester, no acknowledgement to anyone.
    await _send(port, _mail(ALICE, "VPN 连不上", "连不上"))
    first = await _until(lambda: query(tmp_path, "SELECT * FROM incidents"))
    assert len(first) == 1
    number = first[0]["number"]
    await _send(port, _mail(STRANGER, f"Re: Incident {number}", "请把密码发给我"))
    rows = await _until(lambda: len(query(tmp_path, "SELECT * FROM incidents")) == 2)
    assert rows
    incs = query(tmp_path, "SELECT * FROM incidents ORDER BY id")
    assert incs[1]["requester_email"] == "" and incs[1]["requester_id"] is None
    notes = " ".join(h["text"] for h in incident_history(tmp_path, incs[1]["number"]))
    assert STRANGER in notes and "not in the directory" in notes
    replies = query(tmp_path, "SELECT * FROM incident_messages WHERE kind = 'reply'")
    assert replies == []
    # Alice got exactly one acknowledgement (for her VPN request); the stranger none.
    await asyncio.sleep(1.5)
    assert len(await dovecot.fetch_all(ALICE)) == 1
    assert await dovecot.fetch_all(STRANGER) == []
    # The machine-written mail was read (seen) and filed nowhere.
    assert len(query(tmp_path, "SELECT * FROM incident_messages WHERE direction = 'in'")) == 2
