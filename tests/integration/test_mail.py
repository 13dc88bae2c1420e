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
from zoneinfo import ZoneInfo

import aiosmtplib
import pytest
from aiohttp.test_utils import TestServer

from cti.ivr.ports import NewIncident
from cti.phone import NumberPlan, normalize
from cti.sandbox.instance import free_port
from desk import incidents
from desk.directory import requester_of, upsert_user
from desk.ivr_port import DeskService
from desk.mail.models import IncidentMessage, MessageAttachment
from desk.web.keys import SESSIONS
from tests.support.db import incident_history, query, url_of
from tests.support.dovecot import DovecotServer, relay
from tests.support.smtp import smtp_server
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


async def _until(check: Any, timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.2)


@pytest.fixture
async def desk(tmp_path: Path, mail_system: tuple[DovecotServer, int]) -> AsyncIterator[TestServer]:
    dovecot, port = mail_system
    async with desk_server(
        tmp_path, CTI_DATABASE_URL=url_of(tmp_path), **_env(dovecot, port)
    ) as server:
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
        # The workbench's detail page shows the same e-mails with the incident.
        r = await agent.get(f"/api/incidents/{number}")
        assert [m["id"] for m in (await r.json())["emails"]] == [m["id"] for m in listed]
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


@pytest.mark.postgresql
async def test_the_same_on_postgresql(
    tmp_path: Path, mail_system: tuple[DovecotServer, int], desk: TestServer
) -> None:
    await test_a_request_by_mail_is_acknowledged_and_the_reply_lands_on_it(
        tmp_path, mail_system, desk
    )


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


async def test_every_channel_is_acknowledged_to_the_directory_address(tmp_path: Path) -> None:
    """The phone (IVR), the portal and an agent: one acknowledgement each, to the directory's
    address, never to an address typed on the form."""
    with smtp_server() as (port, inbox):
        async with (
            desk_server(
                tmp_path,
                CTI_SMTP_HOST="127.0.0.1",
                CTI_SMTP_PORT=str(port),
                CTI_MAIL_OUTBOX_SECONDS="0.2",
            ) as server,  # fmt: skip
            from_address(server, "127.0.0.2") as visitor,
            from_address(server, "127.0.0.3") as agent,
        ):
            plan = NumberPlan(area_code="10")
            async with server.app[SESSIONS].begin() as s:
                user, _ = await upsert_user(s, {"employee_no": "E1001", "name": "张三",
                                                "mobile": "13800138000", "email": ALICE},
                                            by="test", now=datetime.now(UTC), plan=plan)  # fmt: skip
            ivr = DeskService(server.app[SESSIONS], plan, ZoneInfo("Asia/Shanghai"))
            caller = await ivr.identify_caller(normalize("13800138000", plan).key or "")
            assert caller is not None
            by_phone = await ivr.open_incident(NewIncident("fault", "网络", "VPN 断了", "phone",
                "13800138000", "+8613800138000", caller, "1700000000.1", "zh", "1"))  # fmt: skip
            r = await visitor.post("/portal/api/requests", json={"type": "fault", "symptom": "打印机",
                                   "phone": "13800138000", "email": "attacker@evil.example"})  # fmt: skip
            assert r.status == 201
            by_portal = (await r.json())["number"]
            await add_staff(server.app, "agent1", "agent", "1001")
            await login(agent, "agent1")
            r = await agent.post("/api/incidents", json={"type": "consultation", "symptom": "权限",
                                                         "user_id": user.id})  # fmt: skip
            by_agent = (await r.json())["number"]
            # Without a requester there is nobody to acknowledge.
            r = await agent.post("/api/incidents", json={"type": "fault", "symptom": "walk-in"})
            assert r.status == 201
            await _until(lambda: len(inbox.messages) >= 3)
            await asyncio.sleep(0.5)
            assert inbox.recipients == [ALICE] * 3
            subjects = " ".join(str(m["Subject"]) for m in inbox.messages)
            assert all(n in subjects for n in (by_phone, by_portal, by_agent))
            expected = [{"status": "sent", "to_addr": ALICE}] * 3
            sent = await _until(
                lambda: query(tmp_path, "SELECT status, to_addr FROM incident_messages") == expected
            )
            assert sent, query(tmp_path, "SELECT status, to_addr FROM incident_messages")


async def test_an_unreachable_smtp_server_is_retried_later(tmp_path: Path) -> None:
    async with desk_server(tmp_path, CTI_SMTP_HOST="127.0.0.1", CTI_SMTP_PORT=str(free_port()),
                           CTI_MAIL_OUTBOX_SECONDS="0.2") as server:  # fmt: skip
        async with server.app[SESSIONS].begin() as s:
            user, _ = await upsert_user(s, {"employee_no": "E1", "name": "张三", "email": ALICE},
                                        by="test", now=datetime.now(UTC),
                                        plan=NumberPlan(area_code="10"))  # fmt: skip
            await incidents.create(s, NewIncident("fault", "", "x", "web", "", None,
                                   requester_of(user), "", "zh", ""), recorded_by="web",
                                   now=datetime.now(UTC), local_day=datetime.now(UTC).date())  # fmt: skip
        rows = await _until(lambda: [r for r in query(tmp_path, "SELECT * FROM incident_messages")
                                     if r["attempts"] >= 1])  # fmt: skip
        await asyncio.sleep(1.0)  # later rounds wait for the back-off: still one attempt
        row = query(tmp_path, "SELECT * FROM incident_messages")[0]
        assert rows and row["status"] == "queued" and row["attempts"] == 1 and row["error"]
        assert row["next_try_at"] > row["at"]


async def test_mail_routes_refuse_strangers_and_never_let_a_file_run(tmp_path: Path) -> None:
    async with (
        desk_server(tmp_path) as server,
        from_address(server, "127.0.0.2") as stranger,
        from_address(server, "127.0.0.3") as agent,
    ):
        await add_staff(server.app, "agent1", "agent", "1001")
        await login(agent, "agent1")
        r = await agent.post("/api/incidents", json={"type": "fault", "symptom": "x"})
        number = (await r.json())["number"]
        now = datetime.now(UTC)
        async with server.app[SESSIONS].begin() as s:
            inc = await incidents.get(s, number)
            m = IncidentMessage(incident_id=inc.id, direction="in", kind="reply",
                                message_id="<evil@x>", in_reply_to="", from_addr="a@x", to_addr="",
                                subject="s", body="b", status="received", attempts=0, error="",
                                at=now)  # fmt: skip
            s.add(m)
            await s.flush()
            s.add(MessageAttachment(message_id=m.id, filename='x"\r\nSet-Cookie: a=b.html',
                                    content_type="text/html", size=40,
                                    data=b"<script>alert(document.cookie)</script>"))  # fmt: skip
        for path in (f"/api/incidents/{number}/messages", "/api/mail/attachments/1"):
            r = await stranger.get(path)
            assert r.status == 401, path
        assert (await agent.get("/api/mail/attachments/abc")).status == 400
        assert (await agent.get("/api/mail/attachments/99999999")).status == 404
        assert (await agent.get("/api/mail/attachments/" + "9" * 40)).status == 400
        assert (await agent.get("/api/incidents/999999999/messages")).status == 404
        assert (await agent.get("/api/incidents/12x/messages")).status == 400
        answers = await asyncio.gather(*(agent.get("/api/mail/attachments/1") for _ in range(20)))
        assert all(a.status == 200 for a in answers)
        r = answers[0]
        assert r.headers["Content-Type"].startswith("application/octet-stream")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in r.headers["Content-Security-Policy"]
        assert r.headers["Content-Disposition"].startswith("attachment;")
        assert "Set-Cookie" not in r.headers and "\n" not in r.headers["Content-Disposition"]
        listed = (await (await agent.get(f"/api/incidents/{number}/messages")).json())["messages"]
        assert (
            listed[0]["attachments"][0]["size"] == 40 and "data" not in listed[0]["attachments"][0]
        )


async def test_a_mailbox_that_is_down_holds_up_nothing(tmp_path: Path) -> None:
    """The IMAP server refuses connections: the error shows on /healthz for staff, and the
    acknowledgements still go out."""
    with smtp_server() as (port, inbox):
        async with (
            desk_server(
                tmp_path,
                CTI_SMTP_HOST="127.0.0.1",
                CTI_SMTP_PORT=str(port),
                CTI_IMAP_HOST="127.0.0.1",
                CTI_IMAP_PORT=str(free_port()),
                CTI_IMAP_TLS="false",
                CTI_IMAP_USER=DESK,
                CTI_IMAP_SECRET="x",
                CTI_MAIL_POLL_SECONDS="1",
                CTI_MAIL_OUTBOX_SECONDS="0.2",
            ) as server,  # fmt: skip
            from_address(server, "127.0.0.3") as agent,
            from_address(server, "127.0.0.4") as stranger,
        ):
            async with server.app[SESSIONS].begin() as s:
                user, _ = await upsert_user(s, {"employee_no": "E1", "name": "张三", "email": ALICE},
                                            by="test", now=datetime.now(UTC),
                                            plan=NumberPlan(area_code="10"))  # fmt: skip
            await add_staff(server.app, "agent1", "agent", "1001")
            await login(agent, "agent1")
            r = await agent.post(
                "/api/incidents", json={"type": "fault", "symptom": "x", "user_id": user.id}
            )
            assert r.status == 201
            assert await _until(lambda: inbox.recipients == [ALICE])
            body = await (await agent.get("/healthz")).json()
            assert "mailbox" in body["mail"]["errors"], body
            assert "IMAP" in body["mail"]["errors"]["mailbox"]
            assert "mail" not in await (await stranger.get("/healthz")).json()
