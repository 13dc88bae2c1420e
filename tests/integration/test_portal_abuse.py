"""The self-service portal as an anonymous attacker uses it, against the running server with a
real SMTP server: passing for someone by typing their employee number, choosing who receives the
desk's notices and what they say, and an e-mail address that breaks every later notice."""

import asyncio
from datetime import UTC, datetime
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestServer
from sqlalchemy import update

from cti.phone import NumberPlan
from desk.directory import upsert_user
from desk.models import Incident
from desk.web.keys import SESSIONS
from tests.support.smtp import Inbox, smtp_server
from tests.support.staff import add_staff, login
from tests.support.web import desk_server, from_address

ZHANGSAN = {"employee_no": "E1001", "name": "张三", "department": "财务部", "location": "A座3楼",
            "office_phone": "010-62345678", "mobile": "13800138000",
            "email": "zhangsan@example.com"}  # fmt: skip


async def _directory(server: TestServer) -> int:
    async with server.app[SESSIONS].begin() as s:
        user, _ = await upsert_user(s, dict(ZHANGSAN), by="test", now=datetime.now(UTC),
                                    plan=NumberPlan(area_code="10"))  # fmt: skip
        return user.id


async def _incident(agent: Any, number: str) -> dict[str, Any]:
    r = await agent.get(f"/api/incidents/{number}")
    assert r.status == 200
    body: dict[str, Any] = await r.json()
    return body


async def _mail_settles(inbox: Inbox) -> None:
    await asyncio.sleep(0.5)  # a notice, if one were sent, is handed over before the answer


async def test_typing_an_employee_number_does_not_make_you_that_user(tmp_path: Path) -> None:
    async with (
        desk_server(tmp_path) as server,
        from_address(server, "127.0.0.2") as attacker,
        from_address(server, "127.0.0.3") as agent,
    ):
        user_id = await _directory(server)
        await add_staff(server.app, "agent1", "agent", "1001")
        await login(agent, "agent1")
        body = {"type": "service_request", "symptom": "请重置我的邮箱密码并发到新邮箱",
                "phone": "13912345678", "employee_no": "E1001", "name": "张三"}  # fmt: skip
        r = await attacker.post("/portal/api/requests", json=body)
        assert r.status == 201, await r.text()
        inc = await _incident(agent, (await r.json())["number"])
        assert inc["requester"]["id"] is None, inc["requester"]
        assert inc["requester"]["email"] == "" and inc["requester"]["department"] == ""
        notes = " ".join(h["text"] for h in inc["history"])
        assert "E1001" in notes and "not verified" in notes
        # From a phone the directory has for that person, the record is attached, and the
        # incident says on what grounds.
        body["phone"] = "13800138000"
        r = await attacker.post("/portal/api/requests", json=body)
        inc = await _incident(agent, (await r.json())["number"])
        assert inc["requester"]["id"] == user_id
        notes = " ".join(h["text"] for h in inc["history"])
        assert "phone" in notes and "not verified" in notes


async def test_the_portal_cannot_choose_who_gets_notices_or_what_they_say(tmp_path: Path) -> None:
    with smtp_server() as (port, inbox):
        async with (
            desk_server(tmp_path, CTI_SMTP_HOST="127.0.0.1", CTI_SMTP_PORT=str(port)) as server,
            from_address(server, "127.0.0.2") as attacker,
            from_address(server, "127.0.0.3") as agent,
        ):
            await add_staff(server.app, "agent1", "agent", "1001")
            await login(agent, "agent1")
            base = {"type": "fault", "symptom": "x", "phone": "13912345678"}
            for bad in ("a@evil.example, b@evil.example, c@evil.example",
                        "victim@example.com\r\nBcc: a@evil.example", "victim@example.com\nx",
                        "<victim@example.com>", "victim@example.com;a@evil.example"):  # fmt: skip
                r = await attacker.post("/portal/api/requests", json={**base, "email": bad})
                assert r.status == 400 and "mail" in (await r.json())["message"], bad
            phishing = "您的账号将被停用，请立即访问 http://evil.example 验证"
            r = await attacker.post("/portal/api/requests", json={**base, "category": phishing})
            assert r.status == 400 and "category" in (await r.json())["message"]
            # A valid address typed on the form is kept for the desk to read, but notices go
            # only to an address from the directory: here there is none.
            r = await attacker.post("/portal/api/requests",
                                    json={**base, "email": "victim@example.com", "category": "密码重置",
                                          "account": "E9999"})  # fmt: skip
            assert r.status == 201, await r.text()
            number = (await r.json())["number"]
            inc = await _incident(agent, number)
            assert inc["category"] == "密码重置" and inc["requester"]["email"] == ""
            assert "victim@example.com" in " ".join(h["text"] for h in inc["history"])
            r = await agent.post(f"/api/incidents/{number}/resolve", json={"text": "已处理"})
            assert r.status == 200 and (await r.json())["notice"]["sent"] is False
            await _mail_settles(inbox)
            assert inbox.recipients == []


async def test_a_bad_stored_address_never_breaks_an_incident(tmp_path: Path) -> None:
    """Records from before these checks may hold an address with a line break: the incident can
    still be resolved and closed, the notice is refused with a reason in its history, and no
    header is injected."""
    with smtp_server() as (port, inbox):
        async with (
            desk_server(tmp_path, CTI_SMTP_HOST="127.0.0.1", CTI_SMTP_PORT=str(port)) as server,
            from_address(server, "127.0.0.3") as agent,
        ):
            await add_staff(server.app, "agent1", "agent", "1001")
            await login(agent, "agent1")
            r = await agent.post("/api/incidents", json={"type": "fault", "symptom": "VPN",
                                                         "category": "网络\r\nBcc: a@evil.example"})  # fmt: skip
            number = (await r.json())["number"]
            async with server.app[SESSIONS].begin() as s:
                await s.execute(update(Incident).values(
                    requester_email="victim@example.com\r\nBcc: a@evil.example"))  # fmt: skip
            r = await agent.post(f"/api/incidents/{number}/resolve", json={"text": "已处理"})
            assert r.status == 200, await r.text()
            notice = (await r.json())["notice"]
            assert notice["sent"] is False and "address" in notice["error"]
            r = await agent.post(f"/api/incidents/{number}/close", json={"confirmed": True})
            assert r.status == 200 and (await r.json())["state"] == "closed"
            hist = (await _incident(agent, number))["history"]
            assert [h["kind"] for h in hist].count("notice_failed") == 2
            # A good address, a line break in the category: the notice goes; the category is text.
            async with server.app[SESSIONS].begin() as s:
                await s.execute(update(Incident).values(requester_email="zhangsan@example.com"))
            r = await agent.post(
                f"/api/incidents/{number}/notes", json={"text": "回访", "notify": True}
            )
            assert r.status == 201 and (await r.json())["notice"]["sent"] is True
            await _mail_settles(inbox)
            assert inbox.recipients == ["zhangsan@example.com"]
            msg = inbox.messages[0]
            subject = str(make_header(decode_header(msg["Subject"])))
            body = msg.get_payload(decode=True).decode()
            assert "261" in subject and "网络 Bcc: a@evil.example" in body and msg["Bcc"] is None


async def test_directory_addresses_are_single_mailboxes(tmp_path: Path) -> None:
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.3") as agent:
        user_id = await _directory(server)
        await add_staff(server.app, "agent1", "agent", "1001")
        await login(agent, "agent1")
        for bad in ("a@example.com,b", "a@example.com b@example.com", "a@@example.com",
                    "a@example.com\nBcc: b@example.com"):  # fmt: skip
            r = await agent.patch(f"/api/users/{user_id}", json={"email": bad})
            assert r.status == 400 and "email" in (await r.json())["message"], bad
        r = await agent.patch(
            f"/api/users/{user_id}", json={"email": "zhang.san+it@mail.example.com"}
        )
        assert r.status == 200
