"""The incident workbench over HTTP on a real SQLite file and a real SMTP server (no Asterisk):
the list filtered, sorted and paged over every incident; assign, merge, parent/child; the
hand-off to a group's mailbox; the SLA document and its sweep (breach warnings, auto-close); the
voicemail with Range requests; clause 6.2 on the portal. Attackers too: other roles, no session,
hostile input, parallel requests."""

import asyncio
import wave
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy import select, update

from cti.phone import NumberPlan
from desk import directory
from desk.directory import upsert_user
from desk.models import ConfigItem, Incident, IncidentEvent, Staff, User
from desk.web import alerts
from desk.web.keys import SESSIONS
from reports.build import ReportOptions, build_report, period_for
from tests.support import db
from tests.support.smtp import Inbox, smtp_server
from tests.support.staff import add_staff, login
from tests.support.web import desk_server, from_address

PLAN = NumberPlan(area_code="10")
SLA_DOC = {
    "targets": [
        {"priority": 1, "response_minutes": 15, "resolution_minutes": 240, "clock": "always"},
        {"priority": 2, "response_minutes": 60, "resolution_minutes": 480, "clock": "always"},
        {"priority": 3, "response_minutes": 240, "resolution_minutes": 1440, "clock": "always"},
        {"priority": 4, "response_minutes": 480, "resolution_minutes": 4320, "clock": "always"},
    ],
    "due_soon_minutes": 30,
    "autoclose_days": 3,
    "admin_group": "系统管理员组",
    "groups": [
        {"name": "网络组", "email": "network@example.com"},
        {"name": "系统管理员组", "email": "admins@example.com"},
    ],
    "services": [
        {"name": "邮件", "owner": "王芳", "group": "网络组", "config_items": ["Exchange"]},
    ],
}


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[tuple[TestServer, Inbox]]:
    with smtp_server() as (port, inbox):
        async with desk_server(
            tmp_path,
            CTI_DATABASE_URL=db.url_of(tmp_path),  # PostgreSQL when the test asks for it
            CTI_SMTP_HOST="127.0.0.1",
            CTI_SMTP_PORT=str(port),
            CTI_SLA_SWEEP_SECONDS="0",
            # The new incidents' acknowledgements (test_mail's subject) wait in the outbox for
            # the whole test: this inbox gets only what the workbench sends itself. With the
            # default 5 s they arrived whenever the test ran longer than that (a loaded machine).
            CTI_MAIL_OUTBOX_SECONDS="86400",
        ) as server:
            for name, role in (("lead1", "lead"), ("agent1", "agent"), ("agent2", "agent")):
                await add_staff(server.app, name, role, name=name.upper())
            yield server, inbox


async def _session(server: TestServer, username: str, address: str) -> aiohttp.ClientSession:
    client = from_address(server, address)
    await login(client, username)
    return client


async def _user(server: TestServer, employee_no: str, name: str, mobile: str, email: str,
                *, privileged: bool = False) -> int:  # fmt: skip
    async with server.app[SESSIONS].begin() as s:
        user, _ = await upsert_user(s, {"employee_no": employee_no, "name": name,
                                        "mobile": mobile, "email": email},
                                    by="test", now=datetime.now(UTC), plan=PLAN)  # fmt: skip
        user.privileged = privileged
        return user.id


async def _create(client: aiohttp.ClientSession, **body: Any) -> dict[str, Any]:
    r = await client.post("/api/incidents", json={"type": "fault", "symptom": "x", **body})
    assert r.status == 201, await r.text()
    out: dict[str, Any] = await r.json()
    return out


async def _wait_mail(inbox: Inbox, n: int) -> None:
    for _ in range(100):
        if len(inbox.messages) >= n:
            return
        await asyncio.sleep(0.05)


async def test_the_list_covers_every_open_incident_filtered_sorted_and_paged(desk: Any) -> None:
    server, _ = desk
    agent = await _session(server, "agent1", "127.0.0.2")
    try:
        # 260 open incidents; the OLDEST is the most overdue: the old list kept the newest 200
        # before sorting, so it never showed.
        now = datetime.now(UTC)
        numbers = []
        for i in range(260):
            inc = await _create(agent, symptom=f"打印机卡纸 printer jam {i}", priority=3)
            numbers.append(inc["number"])
        async with server.app[SESSIONS].begin() as s:
            for i, number in enumerate(numbers):
                await s.execute(
                    update(Incident)
                    .where(Incident.number == number)
                    .values(
                        created_at=now - timedelta(hours=500 - i),
                        resolve_due_at=now - timedelta(hours=400 - i) + timedelta(days=30),
                        response_due_at=now + timedelta(days=40),
                    )
                )
            await s.execute(
                update(Incident)
                .where(Incident.number == numbers[0])
                .values(resolve_due_at=now - timedelta(hours=5))
            )
            await s.execute(
                update(Incident)
                .where(Incident.number == numbers[1])
                .values(symptom="VPN 连不上 after the upgrade", priority=1, assignee="agent2")
            )
        body = await (await agent.get("/api/incidents?limit=50")).json()
        assert body["total"] == 260 and len(body["incidents"]) == 50
        first = body["incidents"][0]
        assert first["number"] == numbers[0]
        assert first["sla_standing"] == "breached" and first["sla_breaches"] == ["resolution"]
        page6 = await (await agent.get("/api/incidents?limit=50&page=6")).json()
        assert len(page6["incidents"]) == 10
        seen = {i["number"] for i in page6["incidents"]}
        assert not seen & {i["number"] for i in body["incidents"]}
        breached = await (await agent.get("/api/incidents?sla=breached")).json()
        assert [i["number"] for i in breached["incidents"]] == [numbers[0]]
        # Text search in Chinese and English, case-insensitive, terms together.
        for q in ("VPN", "vpn 连不上", "连不上", "UPGRADE"):
            found = await (await agent.get("/api/incidents", params={"q": q})).json()
            assert [i["number"] for i in found["incidents"]] == [numbers[1]], q
        found = await (await agent.get("/api/incidents", params={"q": "卡纸"})).json()
        assert found["total"] == 259
        # Wildcards typed are text, not patterns.
        found = await (await agent.get("/api/incidents", params={"q": "%"})).json()
        assert found["total"] == 0
        mine = await (await agent.get("/api/incidents?assignee=agent2&priority=1")).json()
        assert [i["number"] for i in mine["incidents"]] == [numbers[1]]
        newest = await (await agent.get("/api/incidents?sort=created&order=desc&limit=1")).json()
        assert newest["incidents"][0]["number"] == numbers[-1]
        for bad in ("sort=evil", "order=up", "page=0", "limit=9999", "priority=7", "sla=late",
                    "state=bogus", "page=x"):  # fmt: skip
            r = await agent.get(f"/api/incidents?{bad}")
            assert r.status == 400, bad
            assert "message" in await r.json()
        r = await agent.get("/api/incidents", params={"q": "x" * 201})
        assert r.status == 400
    finally:
        await agent.close()
    anonymous = from_address(server, "127.0.0.3")
    try:
        assert (await anonymous.get("/api/incidents")).status == 401
    finally:
        await anonymous.close()


async def test_work_an_incident_assign_merge_outage_children_and_hand_off(desk: Any) -> None:
    server, inbox = desk
    lead = await _session(server, "lead1", "127.0.0.2")
    agent = await _session(server, "agent1", "127.0.0.3")
    try:
        assert (await agent.put("/api/sla", json=SLA_DOC)).status == 403
        r = await lead.put("/api/sla", json={**SLA_DOC, "targets": SLA_DOC["targets"][:3]})
        assert r.status == 400 and "priority 4" in (await r.json())["message"]
        r = await lead.put("/api/sla", json={**SLA_DOC, "services": [{"name": "邮件", "config_items": ["Nope"]}]})  # fmt: skip
        assert r.status == 400 and "Nope" in (await r.json())["message"]
        async with server.app[SESSIONS].begin() as s:
            s.add(ConfigItem(name="Exchange", updated_at=datetime.now(UTC)))
        assert (await lead.put("/api/sla", json=SLA_DOC)).status == 200

        ids = [
            await _user(server, f"E{n}", f"用户{n}", f"1380013800{n}", f"u{n}@example.com")
            for n in range(3)
        ]
        outage = await _create(agent, symptom="邮件服务器宕机", user_id=ids[0])
        kids = [(await _create(agent, symptom="收不到邮件", user_id=u))["number"] for u in ids[1:]]
        for kid in kids:
            r = await agent.post(f"/api/incidents/{kid}/parent", json={"parent": outage["number"]})
            assert r.status == 200
        # One level only; not itself; hostile values.
        r = await agent.post(f"/api/incidents/{outage['number']}/parent", json={"parent": kids[0]})
        assert r.status == 409
        for bad in ({"parent": outage["number"][:3] + "x"}, {"parent": 5}, {"parent": "9" * 30}):
            r = await agent.post(f"/api/incidents/{kids[0]}/parent", json=bad)
            assert r.status == 400, bad

        # The configuration item comes from the CMDB (the reports group by it).
        r = await agent.patch(f"/api/incidents/{outage['number']}", json={"config_item": "Nope"})
        assert r.status == 400
        for number in (outage["number"], *kids):
            r = await agent.patch(f"/api/incidents/{number}",
                                  json={"config_item": "Exchange", "service": "邮件"})  # fmt: skip
            assert r.status == 200 and (await r.json())["config_item"] == "Exchange"
        tz = ZoneInfo("Asia/Shanghai")
        report = await build_report(
            server.app[SESSIONS], period_for("forward", date.today(), tz), ReportOptions()
        )
        assert {"config_item": "Exchange", "faults": 3} in report["forward"]["repeated_faults"]

        # Assign: only to active staff; the assignee is recorded.
        r = await agent.post(
            f"/api/incidents/{outage['number']}/assign", json={"assignee": "ghost"}
        )
        assert r.status == 400
        r = await agent.post(
            f"/api/incidents/{outage['number']}/assign", json={"assignee": "agent2"}
        )
        body = await r.json()
        assert r.status == 200 and body["assignee"] == "agent2" and body["state"] == "in_progress"

        # Escalation hands the incident to the group's mailbox from the catalogue.
        r = await agent.post(f"/api/incidents/{outage['number']}/escalate",
                             json={"group": "网络组", "reason": "交换机故障", "notify": False})  # fmt: skip
        handoff = (await r.json())["handoff"]
        assert handoff == {"sent": True, "to": "network@example.com", "error": None}
        await _wait_mail(inbox, 1)
        assert inbox.recipients == ["network@example.com"]
        text = inbox.messages[0].get_payload(decode=True).decode()
        assert outage["number"] in text and "交换机故障" in text and "Exchange" in text

        # Resolving the outage resolves its children and tells each child's requester.
        r = await agent.post(f"/api/incidents/{outage['number']}/resolve",
                             json={"text": "已更换交换机", "notify": False})  # fmt: skip
        resolved = (await r.json())["children_resolved"]
        assert sorted(c["number"] for c in resolved) == sorted(kids)
        assert all(c["notice"]["sent"] for c in resolved)
        await _wait_mail(inbox, 3)
        assert sorted(inbox.recipients[1:]) == ["u1@example.com", "u2@example.com"]
        for kid in kids:
            detail = await (await agent.get(f"/api/incidents/{kid}")).json()
            assert detail["state"] == "resolved" and detail["parent"]["number"] == outage["number"]
        detail = await (await agent.get(f"/api/incidents/{outage['number']}")).json()
        assert sorted(c["number"] for c in detail["children"]) == sorted(kids)

        # Merge a duplicate: closed, pointing at the one kept; parallel merges: one wins.
        dup = (await _create(agent, symptom="邮件又坏了"))["number"]
        other = (await _create(agent, symptom="另一个"))["number"]
        results = await asyncio.gather(
            agent.post(f"/api/incidents/{dup}/merge", json={"into": outage["number"]}),
            agent.post(f"/api/incidents/{dup}/merge", json={"into": other}),
        )
        assert sorted(r.status for r in results) == [200, 409]
        merged = await (await agent.get(f"/api/incidents/{dup}")).json()
        assert merged["state"] == "closed" and merged["merged_into"] in (outage["number"], other)
        kept = await (await agent.get(f"/api/incidents/{merged['merged_into']}")).json()
        assert [d["number"] for d in kept["duplicates"]] == [dup]
        r = await agent.post(f"/api/incidents/{dup}/resolve", json={"text": "x"})
        assert r.status == 409
        for bad in ({"into": dup}, {"into": "abc"}, {"into": "999999999"}, {}):
            r = await agent.post(f"/api/incidents/{other}/merge", json=bad)
            assert r.status in (400, 409), bad
    finally:
        await lead.close()
        await agent.close()


async def test_sla_sweep_warns_the_assignee_and_closes_unanswered_resolutions(desk: Any) -> None:
    server, inbox = desk
    lead = await _session(server, "lead1", "127.0.0.2")
    agent = await _session(server, "agent1", "127.0.0.3")
    try:
        assert (await lead.put("/api/sla", json={**SLA_DOC, "services": []})).status == 200
        async with server.app[SESSIONS].begin() as s:
            await s.execute(
                update(Staff).where(Staff.username == "agent1").values(email="agent1@example.com")
            )
        late = await _create(agent, symptom="打不开网页", priority=1)
        old = await _create(agent, symptom="已解决的问题")
        r = await agent.post(f"/api/incidents/{old['number']}/resolve",
                             json={"text": "ok", "notify": False})  # fmt: skip
        assert r.status == 200
        now = datetime.now(UTC)
        async with server.app[SESSIONS].begin() as s:
            await s.execute(
                update(Incident)
                .where(Incident.number == late["number"])
                .values(responded_at=None, response_due_at=now - timedelta(minutes=1))
            )
            await s.execute(
                update(Incident)
                .where(Incident.number == old["number"])
                .values(resolved_at=now - timedelta(days=4))
            )
        result = await alerts.sweep_once(server.app)
        assert result.closed == [old["number"]]
        assert result.breached == [(late["number"], "agent1", "response")]
        await _wait_mail(inbox, 1)
        assert inbox.recipients == ["agent1@example.com"]
        assert late["number"] in str(inbox.messages[0]["Subject"]) or late["number"] in (
            inbox.messages[0].get_payload(decode=True).decode()
        )
        # Warned once, not at every sweep.
        again = await alerts.sweep_once(server.app)
        assert again.breached == [] and again.closed == []
        listed = await (await agent.get("/api/incidents?sla=breached")).json()
        assert [i["number"] for i in listed["incidents"]] == [late["number"]]
        closed = await (await agent.get(f"/api/incidents/{old['number']}")).json()
        assert closed["state"] == "closed" and closed["history"][-1]["by"].startswith("system")
        # The wallboard's figures come from the same place.
        r = await lead.get("/api/sla")
        assert (await r.json())["autoclose_days"] == 3
    finally:
        await lead.close()
        await agent.close()


def _wav(path: Path, seconds: float = 1.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x01\x02" * int(8000 * seconds))


async def test_voicemail_plays_with_range_requests_for_staff_only(
    desk: Any, tmp_path: Path
) -> None:
    server, _ = desk
    agent = await _session(server, "agent1", "127.0.0.2")
    try:
        inc = await _create(agent, symptom="留言", channel="voicemail")
        media = tmp_path / "media"
        _wav(media / "recordings" / "1700000000.1.wav")
        (tmp_path / "secret.wav").write_bytes(b"RIFF" + b"\0" * 2000)
        async with server.app[SESSIONS].begin() as s:
            await s.execute(
                update(Incident)
                .where(Incident.number == inc["number"])
                .values(recording="recordings/1700000000.1.wav", call_uniqueid="1700000000.1")
            )
        detail = await (await agent.get(f"/api/incidents/{inc['number']}")).json()
        url = detail["recording_url"]
        assert url == f"/media/incidents/{inc['number']}/voicemail"
        r = await agent.get(url, headers={"Range": "bytes=100-199"})
        assert r.status == 206 and r.headers["Content-Range"].startswith("bytes 100-199/")
        assert len(await r.read()) == 100 and r.headers["Content-Type"] == "audio/wav"
        full = await agent.get(url)
        assert full.status == 200 and (await full.read())[:4] == b"RIFF"
        r = await agent.get("/media/calls/1700000000.1/voicemail", headers={"Range": "bytes=0-3"})
        assert r.status == 206 and await r.read() == b"RIFF"
        # A recording path that leaves the recordings folder is never served.
        async with server.app[SESSIONS].begin() as s:
            await s.execute(
                update(Incident)
                .where(Incident.number == inc["number"])
                .values(recording="recordings/../../secret.wav")
            )
        assert (await agent.get(url)).status == 404
        assert (await agent.get("/media/incidents/abc/voicemail")).status == 400
        assert (await agent.get("/media/calls/none/voicemail")).status == 404
    finally:
        await agent.close()
    anonymous = from_address(server, "127.0.0.3")
    try:
        r = await anonymous.get(url, allow_redirects=False)
        assert r.status in (302, 401) and r.headers.get("Content-Type") != "audio/wav"
        r = await anonymous.get("/portal" + url, allow_redirects=False)
        assert r.status == 404
    finally:
        await anonymous.close()


async def test_privileged_password_request_is_refused_on_the_portal(desk: Any) -> None:
    server, _ = desk
    await _user(server, "E2001", "张三", "13800138000", "zhangsan@example.com")
    await _user(server, "A0001", "管理员", "13900139000", "root@example.com", privileged=True)
    portal = from_address(server, "127.0.0.4")
    agent = await _session(server, "agent1", "127.0.0.5")
    try:
        base = {"type": "service_request", "category": "密码重置", "phone": "13800138000",
                "symptom": "请重置密码", "language": "en"}  # fmt: skip
        r = await portal.post("/portal/api/requests", json=base)
        assert r.status == 400 and "account" in (await r.json())["message"]
        r = await portal.post("/portal/api/requests", json={**base, "account": "E2001"})
        body = await r.json()
        assert r.status == 201 and body["refused"] is None
        r = await portal.post("/portal/api/requests", json={**base, "account": "root"})
        body = await r.json()
        assert r.status == 201 and "privileged" in body["refused"]
        detail = await (await agent.get(f"/api/incidents/{body['number']}")).json()
        assert detail["escalated_to"] == "系统管理员组" and detail["account"] == "root"
        assert detail["state"] == "escalated_incident"
        assert any(h["kind"] == "privileged" for h in detail["history"])
        # An agent recording the same by hand gets the same refusal, in writing.
        out = await _create(agent, type="service_request", category="密码重置", account="A0001")
        assert out["refused"]["zh"].startswith("出于安全考虑")
        assert out["escalated_to"] == "系统管理员组"
        async with server.app[SESSIONS]() as s:
            events = (
                await s.scalars(
                    select(IncidentEvent.kind).where(IncidentEvent.kind == "privileged")
                )
            ).all()
            assert len(events) == 2
            assert (
                await s.scalar(select(User.privileged).where(User.employee_no == "E2001"))
            ) is False
    finally:
        await portal.close()
        await agent.close()


async def test_parallel_takes_and_assigns_leave_one_consistent_incident(desk: Any) -> None:
    server, _ = desk
    one = await _session(server, "agent1", "127.0.0.2")
    two = await _session(server, "agent2", "127.0.0.3")
    try:
        number = (await _create(one))["number"]
        calls = [
            (one if i % 2 else two).post(f"/api/incidents/{number}/take") for i in range(20)
        ] + [one.post(f"/api/incidents/{number}/assign", json={"assignee": "agent2"})] * 1
        results = await asyncio.gather(*calls)
        assert all(r.status == 200 for r in results)
        detail = await (await one.get(f"/api/incidents/{number}")).json()
        assert detail["assignee"] in ("agent1", "agent2") and detail["state"] == "in_progress"
        assert [h["to"] for h in detail["history"] if h["kind"] == "state"] == ["in_progress"]
    finally:
        await one.close()
        await two.close()


async def test_the_csv_import_marks_privileged_accounts_and_the_portal_refuses_them(
    desk: Any,
) -> None:
    server, _ = desk
    csv = (
        "工号,姓名,手机,特权账号\nE3001,赵六,13700137000,是\nE3002,钱七,13700137001,否\n"
    ).encode()
    async with server.app[SESSIONS].begin() as s:
        bad = await directory.import_users(
            s, csv.replace("是".encode(), b"maybe"), by="test", now=datetime.now(UTC), plan=PLAN
        )
        assert bad.errors and "line 2" in bad.errors[0] and "privileged" in bad.errors[0]
        done = await directory.import_users(s, csv, by="test", now=datetime.now(UTC), plan=PLAN)
        assert not done.errors and done.created == 2
    async with server.app[SESSIONS]() as s:
        flags = dict((await s.execute(select(User.employee_no, User.privileged))).all())
    assert flags == {"E3001": True, "E3002": False}
    portal = from_address(server, "127.0.0.6")
    try:
        base = {"type": "service_request", "category": "账号开通与变更", "phone": "13700137001",
                "symptom": "变更账号权限"}  # fmt: skip
        refused = await (
            await portal.post("/portal/api/requests", json={**base, "account": "E3001"})
        ).json()
        assert refused["refused"] and "特权" in refused["refused"]
        fine = await (
            await portal.post("/portal/api/requests", json={**base, "account": "E3002"})
        ).json()
        assert fine["refused"] is None
    finally:
        await portal.close()
    # Unmarking in a later import is recorded in the user's history.
    async with server.app[SESSIONS].begin() as s:
        again = csv.replace("是".encode(), "否".encode())
        await directory.import_users(s, again, by="test", now=datetime.now(UTC), plan=PLAN)
        user = await s.scalar(select(User).where(User.employee_no == "E3001"))
        assert user is not None and user.privileged is False


@pytest.mark.postgresql
async def test_the_list_and_the_races_on_postgresql(desk: Any) -> None:
    """The same SQL (NULLS LAST, ILIKE with an escape, CASE, conditional UPDATE ... RETURNING)
    on PostgreSQL."""
    await test_the_list_covers_every_open_incident_filtered_sorted_and_paged(desk)
    await test_work_an_incident_assign_merge_outage_children_and_hand_off(desk)
    await test_parallel_takes_and_assigns_leave_one_consistent_incident(desk)


async def test_new_routes_refuse_strangers_and_other_roles(desk: Any) -> None:
    server, _ = desk
    agent = await _session(server, "agent1", "127.0.0.2")
    lead = await _session(server, "lead1", "127.0.0.3")
    anonymous = from_address(server, "127.0.0.4")
    try:
        number = (await _create(agent))["number"]
        for method, path in (("GET", "/api/sla"), ("PUT", "/api/sla"),
                             ("POST", f"/api/incidents/{number}/assign"),
                             ("POST", f"/api/incidents/{number}/merge"),
                             ("POST", f"/api/incidents/{number}/parent"),
                             ("GET", "/ws/desk")):  # fmt: skip
            r = await anonymous.request(method, path, json={})
            assert r.status in (401, 403), (method, path, r.status)
        for path in ("/sla", f"/incidents/{number}", "/incidents"):
            r = await anonymous.get(path, allow_redirects=False)
            assert r.status == 302 and r.headers["Location"].startswith("/login"), path
        r = await agent.get("/sla", allow_redirects=False)
        assert r.status == 403
        assert (await agent.get(f"/incidents/{number}")).status == 200
        for bad in ("999999999", "abc", "1" * 30):
            assert (await agent.get(f"/incidents/{bad}")).status == 404, bad
        # Without the CSRF token, a write is refused.
        bare = from_address(server, "127.0.0.5")
        await login(bare, "agent2")
        del bare.headers["X-CSRF-Token"]
        r = await bare.post(f"/api/incidents/{number}/assign", json={"assignee": "agent2"})
        assert r.status == 403
        await bare.close()
        # Hostile documents and parallel saves of the catalogue: each a whole document.
        for bad in ([], "x", {"targets": "all"}, {**SLA_DOC, "autoclose_days": -1}):
            r = await lead.put("/api/sla", json=bad)
            assert r.status == 400, bad
        docs = [{**SLA_DOC, "services": [], "due_soon_minutes": n} for n in range(1, 11)]
        results = await asyncio.gather(*(lead.put("/api/sla", json=d) for d in docs))
        assert all(r.status == 200 for r in results)
        final = await (await agent.get("/api/sla")).json()
        assert final["due_soon_minutes"] in range(1, 11) and final["groups"] == SLA_DOC["groups"]
        r = await agent.post(f"/api/incidents/{number}/assign", json={"assignee": "x" * 61})
        assert r.status == 400
        r = await agent.patch(f"/api/incidents/{number}", json={"service": "没有这个服务"})
        assert r.status == 400 and "service" in (await r.json())["message"]
    finally:
        await agent.close()
        await lead.close()
        await anonymous.close()
