"""What the desk publishes (6.4.2) on the portal and to subscribers by e-mail, and the requester's
confirm-or-reopen of a resolved incident, against the running server and a real SMTP server;
with the attacks each route must withstand: no token, a forged or stale link, another person's
incident, parallel answers, floods."""

import asyncio
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from cti.phone import NumberPlan
from desk import sla
from desk.directory import upsert_user
from desk.models import Announcement
from desk.staff import upsert_staff
from desk.web.keys import LINKS, MAIL, SESSIONS
from tests.support.db import incident_history, query, url_of
from tests.support.smtp import Inbox, smtp_server
from tests.support.staff import PASSWORD, add_staff, login
from tests.support.web import desk_server, from_address

ZHANGSAN = {"employee_no": "E1001", "name": "张三", "department": "财务部",
            "mobile": "13800138000", "email": "zhangsan@example.com"}  # fmt: skip
TOKEN = re.compile(r'name="token" value="([^"]+)"')


@pytest.fixture
def smtp() -> Iterator[tuple[int, Inbox]]:
    with smtp_server() as found:
        yield found


@pytest.fixture
async def desk(tmp_path: Path, smtp: tuple[int, Inbox]) -> AsyncIterator[TestServer]:
    port, _ = smtp
    async with desk_server(tmp_path, CTI_DATABASE_URL=url_of(tmp_path), CTI_SMTP_HOST="127.0.0.1", CTI_SMTP_PORT=str(port),
                           CTI_MAIL_OUTBOX_SECONDS="0.2", CTI_DESK_PHONE="010-62345000",
                           CTI_IMAP_HOST="", CTI_MAIL_PUBLISH_SECONDS="3600") as server:  # fmt: skip
        now = datetime.now(UTC)
        async with server.app[SESSIONS].begin() as s:
            await upsert_user(
                s, dict(ZHANGSAN), by="test", now=now, plan=NumberPlan(area_code="10")
            )
            await upsert_staff(s, {"username": "lisi", "name": "李四", "role": "agent",
                                   "extension": "1009", "position": "网络工程师",
                                   "services": "网络与 VPN", "office_phone": "010-62345009",
                                   "mobile": "13911112222", "email": "lisi@example.com"},
                               PASSWORD)  # fmt: skip
            s.add(Announcement(kind="outage", title="邮件服务中断", text_zh="正在抢修",
                               text_en="Being repaired", service="邮件", starts_at=now - timedelta(hours=1),
                               ends_at=None, created_at=now, updated_at=now))  # fmt: skip
            s.add(Announcement(kind="change", title="周六网络割接", text_zh="周六凌晨网络中断两小时",
                               text_en="", service="网络", starts_at=now + timedelta(days=3),
                               ends_at=now + timedelta(days=3, hours=2), created_at=now,
                               updated_at=now))  # fmt: skip
        yield server


async def _until(check: Any, timeout: float = 40.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.1)


def _text(msg: Any) -> str:
    payload = msg.get_payload(decode=True)
    return payload.decode() if isinstance(payload, bytes) else str(payload)


def _link(msg: Any, path: str) -> str:
    m = re.search(rf"https?://[^/\s]+({re.escape(path)}\?t=\S+)", _text(msg))
    assert m, _text(msg)
    return m.group(1)


async def _form_token(client: aiohttp.ClientSession, url: str) -> tuple[int, str, str]:
    r = await client.get(url)
    html = await r.text()
    m = TOKEN.search(html)
    return r.status, html, m.group(1) if m else ""


async def test_the_published_catalogue_is_the_leads(desk: TestServer) -> None:
    """One definition: the commitments and services the portal publishes are the SLA document
    the lead edits at /sla, the same targets the incidents' timers use."""
    await add_staff(desk.app, "lead1", "lead")
    async with from_address(desk, "127.0.0.4") as lead, from_address(desk, "127.0.0.2") as anon:
        await login(lead, "lead1")
        doc = await (await lead.get("/api/sla")).json()
        doc.pop("config_item_names")
        doc["targets"][0]["response_minutes"] = 17
        doc["targets"][0]["resolution_minutes"] = 150
        doc["services"] = [{"name": "会议室预订", "owner": "行政组", "description": "会议室系统"}]
        r = await lead.put("/api/sla", json=doc)
        assert r.status == 200, await r.text()
        pub = await (await anon.get("/portal/api/published")).json()
        first = pub["catalogue"]["commitments"][0]
        assert (first["priority"], first["response_minutes"], first["resolution_hours"]) == (
            1, 17, 2.5)  # fmt: skip
        assert [(s["name"]["zh"], s["owner"]) for s in pub["catalogue"]["services"]] == [
            ("会议室预订", "行政组")]  # fmt: skip


async def test_the_portal_publishes_what_6_4_2_asks(desk: TestServer) -> None:
    async with from_address(desk, "127.0.0.2") as visitor:
        r = await visitor.get("/portal/api/published")
        assert r.status == 200
        pub = await r.json()
        assert [s["name"]["zh"] for s in pub["catalogue"]["services"]][:2] == [
            "电子邮件",
            "账号与密码",
        ]
        assert {
            c["priority"]: (c["response_minutes"], c["resolution_hours"] * 60)
            for c in pub["catalogue"]["commitments"]
        } == {p: (t.response_minutes, t.resolution_minutes) for p, t in sla.DEFAULT.targets.items()}
        assert all(c["response_minutes"] > 0 for c in pub["catalogue"]["commitments"])
        assert pub["help"]["phone"] == "010-62345000"
        assert "周一至周五" in pub["help"]["hours"]["zh"] and "Monday" in pub["help"]["hours"]["en"]
        assert pub["help"]["email"] == ""  # no mailbox configured: no address to write to
        assert [p["name"] for p in pub["staff"]] == ["李四"]
        assert pub["staff"][0]["services"] == "网络与 VPN" and "mobile" not in pub["staff"][0]
        assert "13911112222" not in await r.text()  # a private number is never published
        assert [n["title"] for n in pub["current"]] == ["邮件服务中断"]
        assert [n["title"] for n in pub["planned"]] == ["周六网络割接"]
        assert isinstance(pub["status"]["open"], bool)
        assert pub["status"]["waiting"] is None  # no live queue on this server
        r = await visitor.get("/portal?lang=zh")
        html = await r.text()
        assert r.status == 200
        for shown in (
            "邮件服务中断",
            "周六网络割接",
            "李四",
            "网络工程师",
            "010-62345000",
            "电子邮件",
        ):
            assert shown in html, shown
        assert "13911112222" not in html
        shown = re.search(r'id="desk-open">([^<]+)<', html)
        assert shown and shown.group(1) == ("服务中" if pub["status"]["open"] else "非服务时间")


async def test_only_the_link_in_the_resolution_notice_confirms_or_reopens(
    tmp_path: Path, desk: TestServer, smtp: tuple[int, Inbox]
) -> None:
    _, inbox = smtp
    async with (
        from_address(desk, "127.0.0.3") as agent,
        from_address(desk, "127.0.0.4") as requester,
        from_address(desk, "127.0.0.5") as stranger,
    ):
        await add_staff(desk.app, "agent1", "agent", "1001")
        await login(agent, "agent1")
        user_id = query(tmp_path, "SELECT id FROM users")[0]["id"]
        r = await agent.post(
            "/api/incidents", json={"type": "fault", "symptom": "VPN", "user_id": user_id}
        )
        number = (await r.json())["number"]
        # The acknowledgement with the number, from the outbox.
        await _until(lambda: inbox.messages)
        assert number in str(inbox.messages[0]["Subject"])
        assert inbox.messages[0]["Auto-Submitted"] == "auto-generated"
        r = await agent.post(f"/api/incidents/{number}/resolve", json={"text": "已修复"})
        assert (await r.json())["notice"]["sent"] is True
        notice = inbox.messages[-1]
        link = _link(notice, "/portal/feedback")

        # A stranger who knows the number and the phone can look it up, and cannot change it.
        status, _, token = await _form_token(stranger, "/portal")
        r = await stranger.post("/portal/lookup", data={"token": token, "number": number,
                                                        "phone": "13800138000"})  # fmt: skip
        assert r.status == 200
        for data in ({"token": token, "action": "reopen", "text": "x", "number": number,
                      "phone": "13800138000"},
                     {"token": token, "action": "confirm", "t": link.split("t=")[1][:-4] + "AAAA"},
                     {"token": token, "action": "confirm", "t": "x" * 5000}):  # fmt: skip
            r = await stranger.post("/portal/feedback", data=data)
            assert r.status == 400, await r.text()
        r = await stranger.get("/portal/feedback?t=garbage")
        assert r.status == 400
        assert query(tmp_path, "SELECT state FROM incidents")[0]["state"] == "resolved"

        # The requester opens the link; without the page's token the form is refused.
        status, html, token = await _form_token(requester, link)
        assert status == 200 and number in html
        t = link.split("?t=")[1]
        t = unquote(t)
        r = await requester.post("/portal/feedback", data={"action": "confirm", "t": t})
        assert r.status == 403
        r = await requester.post(
            "/portal/feedback", data={"token": token, "action": "reopen", "t": t}
        )
        assert r.status == 400  # reopening needs a reason
        r = await requester.post(
            "/portal/feedback", data={"token": token, "action": "explode", "t": t}
        )
        assert r.status == 400
        # The agent reopens and resolves again: the first link is void, the new notice's works.
        r = await agent.post(f"/api/incidents/{number}/reopen", json={"text": "用户来电说没好"})
        assert r.status == 200
        r = await agent.post(f"/api/incidents/{number}/resolve", json={"text": "再次修复"})
        assert r.status == 200
        r = await requester.post(
            "/portal/feedback", data={"token": token, "action": "confirm", "t": t}
        )
        assert r.status == 409 and "reopened" in await r.text()
        t = unquote(_link(inbox.messages[-1], "/portal/feedback").split("?t=")[1])
        # Confirm and reopen at once: exactly one counts.
        answers = await asyncio.gather(
            requester.post("/portal/feedback", data={"token": token, "action": "confirm", "t": t}),
            requester.post(
                "/portal/feedback",
                data={"token": token, "action": "reopen", "text": "还是不行", "t": t},
            ),
        )
        statuses = sorted(a.status for a in answers)
        assert statuses == [200, 409], statuses
        state = query(tmp_path, "SELECT state FROM incidents")[0]["state"]
        assert state in ("closed", "in_progress")
        hist = incident_history(tmp_path, number)
        assert sum(1 for h in hist if h["by"].startswith("requester")) == 1
        if state == "in_progress":
            r = await agent.post(f"/api/incidents/{number}/resolve", json={"text": "第三次修复"})
            t = unquote(_link(inbox.messages[-1], "/portal/feedback").split("?t=")[1])
            r = await requester.post(
                "/portal/feedback", data={"token": token, "action": "confirm", "t": t}
            )
            assert r.status == 200
        assert query(tmp_path, "SELECT state FROM incidents")[0]["state"] == "closed"
        r = await requester.post("/portal/feedback", data={"token": token, "action": "reopen",
                                                            "text": "again", "t": t})  # fmt: skip
        assert r.status == 409  # closed: nothing more to say through the link


@pytest.mark.postgresql
async def test_the_links_on_postgresql(
    tmp_path: Path, desk: TestServer, smtp: tuple[int, Inbox]
) -> None:
    await test_only_the_link_in_the_resolution_notice_confirms_or_reopens(tmp_path, desk, smtp)
    await test_subscribers_confirm_then_get_the_publication_and_can_leave(tmp_path, desk, smtp)


async def test_link_guessing_is_rate_limited(desk: TestServer) -> None:
    async with from_address(desk, "127.0.0.6") as guesser, from_address(desk, "127.0.0.7") as other:
        statuses = [
            r.status
            for r in await asyncio.gather(
                *(guesser.get(f"/portal/feedback?t=guess{i}") for i in range(40))
            )
        ]
        assert statuses.count(400) == 30 and statuses.count(429) == 10
        r = await other.get("/portal/unsubscribe?t=guess")
        assert r.status == 400  # another address is not held back


async def test_subscribers_confirm_then_get_the_publication_and_can_leave(
    tmp_path: Path, desk: TestServer, smtp: tuple[int, Inbox]
) -> None:
    _, inbox = smtp
    async with (
        from_address(desk, "127.0.0.8") as visitor,
        from_address(desk, "127.0.0.9") as spammer,
    ):
        _, _, token = await _form_token(visitor, "/portal")
        r = await visitor.post("/portal/subscribe", data={"email": "wangwu@example.com"})
        assert r.status == 403
        for bad in ("a@example.com, b@example.com", "x\r\nBcc: a@evil.example", "", "no-at"):
            r = await visitor.post("/portal/subscribe", data={"token": token, "email": bad})
            assert r.status == 400, bad
        r = await visitor.post(
            "/portal/subscribe", data={"token": token, "email": "WangWu@example.com"}
        )
        assert r.status == 202
        await _until(lambda: inbox.messages)
        confirm = inbox.messages[-1]
        assert (
            confirm["To"] == "wangwu@example.com" and confirm["Auto-Submitted"] == "auto-generated"
        )
        # Nobody floods someone's mailbox with confirmations: two a day per address subscribed.
        _, _, token2 = await _form_token(spammer, "/portal")
        codes = [(await spammer.post("/portal/subscribe", data={"token": token2, "email": "wangwu@example.com"})).status
                 for _ in range(3)]  # fmt: skip
        assert codes == [202, 429, 429]
        await asyncio.sleep(0.5)
        assert sum(m["To"] == "wangwu@example.com" for m in inbox.messages) == 2
        # Two asks at once for one address: one row, no error.
        answers = await asyncio.gather(*(visitor.post("/portal/subscribe", data={"token": token, "email": "zhaoliu@example.com"})
                                         for _ in range(2)))  # fmt: skip
        assert [a.status for a in answers] == [202, 202]
        assert (
            len(
                query(
                    tmp_path, "SELECT * FROM mail_subscribers WHERE email = 'zhaoliu@example.com'"
                )
            )
            == 1
        )
        # Not confirmed yet: no publication.
        assert query(tmp_path, "SELECT confirmed FROM mail_subscribers")[0]["confirmed"] == 0
        link = _link(confirm, "/portal/subscribe/confirm")
        status, html, token = await _form_token(visitor, link)
        assert status == 200 and "wangwu@example.com" in html
        t = unquote(link.split("?t=")[1])
        # A subscription link does not unsubscribe, and vice versa (separate signatures).
        r = await visitor.post("/portal/unsubscribe", data={"token": token, "t": t})
        assert r.status == 400
        r = await visitor.post("/portal/subscribe/confirm", data={"token": token, "t": t})
        assert r.status == 200
        before = len(inbox.messages)
        await _until(lambda: len(inbox.messages) > before)
        pub = inbox.messages[-1]
        body = _text(pub)
        assert (
            pub["To"] == "wangwu@example.com" and "邮件服务中断" in body and "周六网络割接" in body
        )
        assert "13911112222" not in body and "李四" in body
        assert pub["List-Unsubscribe"]
        # Unchanged: not sent again.
        desk.app[MAIL].kick(publish=True)
        await asyncio.sleep(1.0)
        assert len(inbox.messages) == before + 1
        leave = _link(pub, "/portal/unsubscribe")
        status, html, token = await _form_token(visitor, leave)
        r = await visitor.post(
            "/portal/unsubscribe", data={"token": token, "t": unquote(leave.split("?t=")[1])}
        )
        assert r.status == 200
        assert [r["email"] for r in query(tmp_path, "SELECT * FROM mail_subscribers")] == [
            "zhaoliu@example.com"
        ]


async def test_every_link_route_refuses_forgeries_and_missing_tokens(desk: TestServer) -> None:
    links = desk.app[LINKS]
    async with from_address(desk, "127.0.0.10") as visitor:
        _, _, token = await _form_token(visitor, "/portal")
        for path in ("/portal/feedback", "/portal/subscribe/confirm", "/portal/unsubscribe"):
            for t in ("", "garbage", "x" * 3000, "eyJ9.broken.sig", "\x00"):
                r = await visitor.get(path, params={"t": t})
                assert r.status == 400, (path, t, r.status)
                r = await visitor.post(path, data={"token": token, "t": t, "action": "confirm"})
                assert r.status == 400, (path, t, r.status)
            r = await visitor.post(path, data={"t": "garbage", "action": "confirm"})
            assert r.status == 403, path  # the form's token is missing
            r = await visitor.post(path, data={"token": "forged", "t": "garbage"})
            assert r.status == 403, path
        # A link of one kind is not a link of another (each kind is signed apart).
        sub = links.subscribe_url("wangwu@example.com").split("t=")[1]
        r = await visitor.get("/portal/feedback", params={"t": unquote(sub)})
        assert r.status == 400
        # Confirming an address that never asked (a valid link, no row): 404, nothing made.
        r = await visitor.post(
            "/portal/subscribe/confirm", data={"token": token, "t": unquote(sub)}
        )
        assert r.status == 404
        # A feedback link for an incident that does not exist.
        fake = links.feedback_url("261130999", "2026-11-30T00:00:00+00:00").split("t=")[1]
        r = await visitor.get("/portal/feedback", params={"t": unquote(fake)})
        assert r.status == 404
        # The published document under parallel readers: same answer, no private number.
        answers = await asyncio.gather(
            *(visitor.get("/portal/api/published?x=<script>") for _ in range(20))
        )
        bodies = {await a.text() for a in answers}
        assert all(a.status == 200 for a in answers) and len(bodies) == 1
        assert "13911112222" not in bodies.pop()
