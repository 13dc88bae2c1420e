"""The lead's console over HTTP on a real SQLite file (PostgreSQL with CTI_TEST_DATABASE): every
page in both languages, each write and its audit entry, validation that names the field, and the
attacker's tests (no session, the agent's role, another admin, hostile input, parallel requests).
No Asterisk: the phone side of these settings is tests/browser/test_console.py's."""

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from cti.ivr.hours import describe_hours, from_doc
from cti.phone import NumberPlan
from cti.settings import load_settings
from desk.ivr_port import DeskService
from desk.models import AuditEntry, User
from desk.web.app import create_app
from desk.web.keys import HOURS_SEED, KNOWLEDGE, ROUTING_CONFIG, SESSIONS
from tests.support.staff import PASSWORD, browser_like, logged_in, login

PAGES = ("/console", "/announcements", "/oncall", "/knowledge", "/staff", "/directory",
         "/hours", "/routing", "/audit")  # fmt: skip


def settings_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"CTI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
            "CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "x",
            "CTI_DATA_DIR": str(tmp_path), "CTI_TTS_ROOT": "", **extra}  # fmt: skip


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[TestClient]:
    client = TestClient(
        TestServer(create_app(load_settings(None, settings_env(tmp_path)), with_core=False))
    )
    await client.start_server()
    yield client
    await client.close()


async def audit_rows(client: TestClient) -> list[AuditEntry]:
    async with client.server.app[SESSIONS]() as s:
        return list((await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all())


async def test_every_console_page_renders_in_both_languages_for_a_lead_only(
    app_client: TestClient,
) -> None:
    for path in PAGES:  # no session: to the login
        resp = await app_client.get(path, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"].startswith("/login"), path
    await logged_in(app_client, "agent", "agent1")
    for path in PAGES:  # an agent: not for their role
        assert (await app_client.get(path)).status == 403, path
    await logged_in(app_client, "lead", "lead1")
    for path in PAGES:
        zh = await app_client.get(path + "?lang=zh")
        en = await app_client.get(path + "?lang=en")
        assert zh.status == 200 and en.status == 200, path
        zh_text, en_text = await zh.text(), await en.text()
        assert "审计日志" in zh_text and "Audit log" in en_text, path  # the console's menu
        assert "Audit log" not in zh_text, path


async def test_staff_added_from_the_page_logs_in_and_every_write_is_audited(
    app_client: TestClient,
) -> None:
    await logged_in(app_client, "lead", "lead1")
    bad = await app_client.post("/api/staff", json={"username": "wang fang", "name": "王芳",
                                                    "role": "agent", "password": PASSWORD})  # fmt: skip
    assert bad.status == 400 and "username" in (await bad.json())["message"]
    bad = await app_client.post("/api/staff", json={"username": "wangfang", "name": "王芳",
                                                    "role": "agent", "password": "short"})  # fmt: skip
    assert bad.status == 400 and "password" in (await bad.json())["message"]
    bad = await app_client.post("/api/staff", json={"username": "wangfang", "name": "王芳",
                                                    "role": "agent", "email": "a@b.c,d@e.f",
                                                    "password": PASSWORD})  # fmt: skip
    assert bad.status == 400 and "email" in (await bad.json())["message"]
    # A lead does not make admins.
    admin = await app_client.post("/api/staff", json={"username": "root2", "name": "x",
                                                      "role": "admin", "password": PASSWORD})  # fmt: skip
    assert admin.status == 403
    ok = await app_client.post(
        "/api/staff",
        json={"username": "wangfang", "name": "王芳", "role": "agent", "extension": "1009",
              "position": "热线工程师", "services": "邮箱, VPN", "office_phone": "010-62345678",
              "mobile": "13800138009", "email": "wangfang@example.com", "password": PASSWORD},
    )  # fmt: skip
    assert ok.status == 201, await ok.text()
    taken = await app_client.post(
        "/api/staff", json={"username": "lisi", "name": "李四", "role": "agent",
                            "extension": "1009", "password": PASSWORD}
    )  # fmt: skip
    assert taken.status == 400 and "extension" in (await taken.json())["message"]
    # The new agent logs in with the password the lead set.
    other = browser_like(app_client)
    try:
        await login(other, "wangfang")
        me = await (await other.get("/api/agent/me")).json()
        assert me["staff"]["extension"] == "1009"
        # Table A.2 has the fields the page set.
        a2 = await (await app_client.get("/api/exports/staff?format=csv")).text()
        assert "热线工程师" in a2 and "010-62345678" in a2
        # Disabled: the session ends at once, and the password no longer opens one.
        off = await app_client.patch("/api/staff/wangfang", json={"active": False})
        assert off.status == 200
        assert (await other.get("/api/agent/me")).status == 401
        again = await other.post("/api/login", json={"username": "wangfang", "password": PASSWORD})
        assert again.status == 401
    finally:
        await other.close()
    me_off = await app_client.patch("/api/staff/lead1", json={"active": False})
    assert me_off.status == 400 and "yourself" in (await me_off.json())["message"]
    reset = await app_client.post(
        "/api/staff/wangfang/password", json={"password": "new pass 1234"}
    )
    assert reset.status == 200
    actions = [(e.actor, e.action, e.target) for e in await audit_rows(app_client)]
    assert ("lead1", "staff.create", "wangfang") in actions
    assert ("lead1", "staff.disable", "wangfang") in actions
    assert ("lead1", "staff.password", "wangfang") in actions
    assert ("lead1", "export", "staff.csv") in actions  # personal data left the desk
    assert ("wangfang", "login", "wangfang") in actions
    assert ("wangfang", "login.fail", "wangfang") in actions
    # Nothing of the refused requests was written.
    assert not any(target in ("root2", "lisi") for _, _, target in actions)
    page = await (await app_client.get("/audit?action=staff&lang=en")).text()
    assert "staff.create" in page and "login.fail" not in page
    entries = (await (await app_client.get("/api/audit?actor=wangfang")).json())["entries"]
    assert {e["action"] for e in entries} == {"login", "login.fail"}


async def test_an_article_edited_or_retired_on_the_page_changes_the_next_match(
    app_client: TestClient,
) -> None:
    await logged_in(app_client, "lead", "lead1")
    made = await app_client.post(
        "/api/knowledge", json={"title": "打印机卡纸", "body": "打开前盖取出纸张"}
    )
    article = await made.json()
    knowledge = app_client.server.app[KNOWLEDGE]
    assert (await knowledge.match("VPN 连不上", fresh=True))["knowledge"] == []
    edit = await app_client.patch(
        f"/api/knowledge/{article['id']}",
        json={"title": "VPN 连不上", "body": "重新安装 VPN 客户端并检查证书"},
    )
    assert edit.status == 200
    found = (await knowledge.match("VPN 连不上", fresh=True))["knowledge"]
    assert [a["id"] for a in found] == [article["id"]]
    retire = await app_client.patch(f"/api/knowledge/{article['id']}", json={"retired": True})
    assert retire.status == 200
    assert (await knowledge.match("VPN 连不上", fresh=True))["knowledge"] == []
    bad = await app_client.patch(f"/api/knowledge/{article['id']}", json={"retired": "yes"})
    assert bad.status == 400 and "retired" in (await bad.json())["message"]
    item = await (await app_client.post("/api/cmdb", json={"name": "VPN 网关"})).json()
    assert (await knowledge.match("VPN 网关", fresh=True))["cmdb"]
    await app_client.patch(f"/api/cmdb/{item['id']}", json={"status": "retired"})
    assert (await knowledge.match("VPN 网关", fresh=True))["cmdb"] == []
    actions = [e.action for e in await audit_rows(app_client)]
    assert [a for a in actions if a.startswith(("article", "ci"))] == [
        "article.create",
        "article.update",
        "article.retire",
        "ci.create",
        "ci.retire",
    ]


async def test_hours_edited_on_the_page_reach_the_ivr_and_what_it_says(
    app_client: TestClient, tmp_path: Path
) -> None:
    app = app_client.server.app
    await logged_in(app_client, "lead", "lead1")
    got = await (await app_client.get("/api/hours")).json()
    assert got["hours"]["weekly"]["mon"] == ["08:30-12:00", "13:00-17:30"]  # seeded from the file
    doc = got["hours"]
    bad = await app_client.put(
        "/api/hours", json={**doc, "weekly": {**doc["weekly"], "tue": ["9:00-8:00"]}}
    )
    assert bad.status == 400 and "weekly.tue[1]" in (await bad.json())["message"]
    bad = await app_client.put(
        "/api/hours", json={**doc, "holidays": [*doc["holidays"], {"from": "2026-13-01"}]}
    )
    message = (await bad.json())["message"]
    assert bad.status == 400 and f"holidays[{len(doc['holidays']) + 1}].from" in message
    new = {**doc, "weekly": {**doc["weekly"], "sat": ["09:00-12:00"]},
           "holidays": [{"from": "2026-12-24", "to": "2026-12-25", "name": "圣诞"}],
           "workdays": [{"date": "2026-12-27", "as": "fri"}]}  # fmt: skip
    preview = await (await app_client.post("/api/hours/preview", json=new)).json()
    states = {d["date"]: d["state"] for d in preview["calendar"]}
    assert states["2026-12-24"] == "holiday" and states["2026-12-27"] == "workday"
    assert (await (await app_client.get("/api/hours")).json())["hours"]["weekly"]["sat"] == []
    saved = await app_client.put("/api/hours", json=new)
    assert saved.status == 200, await saved.text()
    assert "周六 9点至12点" in (await saved.json())["said"]["zh"]
    # The IVR's port reads the new hours on the next call.
    desk = DeskService(
        app[SESSIONS], NumberPlan("10"), app[HOURS_SEED].tz, fallback_hours=app[HOURS_SEED]
    )
    found = await desk.opening_hours()
    assert found is not None
    sat_morning = datetime(2026, 12, 5, 2, 0, tzinfo=UTC)  # 10:00 in Beijing, a Saturday
    assert found.hours.is_open(sat_morning) and not app[HOURS_SEED].is_open(sat_morning)
    assert not found.hours.is_open(datetime(2026, 12, 24, 2, 0, tzinfo=UTC))  # the holiday
    assert found.hours.is_open(datetime(2026, 12, 27, 2, 0, tzinfo=UTC))  # 调休: a Sunday worked
    entry = next(e for e in await audit_rows(app_client) if e.action == "hours.update")
    assert entry.detail["weekly"][1]["sat"] == ["09:00-12:00"]


def test_the_after_hours_sentence_states_the_hours_it_is_made_from() -> None:
    hours = from_doc({"weekly": {"mon": ["08:30-12:00", "13:00-17:30"], "tue": ["08:30-12:00",
                      "13:00-17:30"], "wed": ["08:30-12:00", "13:00-17:30"], "thu": ["08:30-12:00",
                      "13:00-17:30"], "fri": ["08:30-12:00", "13:00-17:30"], "sat": ["09:00-12:00"]}})  # fmt: skip
    assert describe_hours(hours, "zh") == (
        "现在是非工作时间。服务台的工作时间是周一至周五 8点30分至12点、13点至17点30分；"
        "周六 9点至12点，法定节假日除外。"
    )
    assert "Monday to Friday, 8:30 to 12 o'clock and 13 o'clock to 17:30; Saturday" in (
        describe_hours(hours, "en")
    )


async def test_routing_edited_on_the_page_is_checked_by_line_and_in_force_at_once(
    app_client: TestClient,
) -> None:
    app = app_client.server.app
    await logged_in(app_client, "lead", "lead1")
    text = (await (await app_client.get("/api/routing")).json())["text"]
    broken = text.replace(
        "waiting_calls: {trip: 5, clear: 2}", "waiting_calls: {trip: 5, clear: 9}"
    )
    bad = await app_client.put("/api/routing", json={"text": broken})
    message = (await bad.json())["message"]
    line = next(i for i, ln in enumerate(text.splitlines(), 1) if "waiting_calls:" in ln)
    assert bad.status == 400 and f"line {line}:" in message and "clear" in message, message
    bad = await app_client.put("/api/routing", json={"text": "queues: [\n"})
    assert bad.status == 400 and "line" in (await bad.json())["message"]
    changed = text.replace(
        "waiting_calls: {trip: 5, clear: 2}", "waiting_calls: {trip: 7, clear: 2}"
    )
    seen: list[Any] = []
    app[ROUTING_CONFIG].listen(seen.append)
    ok = await app_client.put("/api/routing", json={"text": changed})
    assert ok.status == 200
    rules = {r.measure.value: r.trip for r in app[ROUTING_CONFIG].current.for_queue("x").rules}
    assert rules["waiting_calls"] == 7 and len(seen) == 1  # in force, listeners told
    unknown = await app_client.post("/api/routing/test", json={"channel": "nope"})
    assert unknown.status == 400 and "channel" in (await unknown.json())["message"]
    assert [e.action for e in await audit_rows(app_client)][-1] == "routing.update"


async def test_directory_import_from_the_page_is_all_or_nothing_and_history_shows(
    app_client: TestClient,
) -> None:
    await logged_in(app_client, "lead", "lead1")
    good = "工号,姓名,部门,手机\nE100,张三,财务部,13800138000\nE101,李四,人事部,13800138001\n"
    bad = good + "E102,,人事部,12\n"
    resp = await app_client.post(
        "/api/users/import", json={"csv_base64": base64.b64encode(bad.encode("gb18030")).decode()}
    )
    body = await resp.json()
    assert resp.status == 400 and body["errors"][0].startswith("line 4:") and body["created"] == 0
    async with app_client.server.app[SESSIONS]() as s:
        assert (await s.scalars(select(User))).all() == []
    for raw in ("not base64!", ""):
        r = await app_client.post("/api/users/import", json={"csv_base64": raw})
        assert r.status == 400 and "csv_base64" in (await r.json())["message"]
    ok = await app_client.post(
        "/api/users/import", json={"csv_base64": base64.b64encode(good.encode()).decode()}
    )
    assert ok.status == 200 and (await ok.json())["created"] == 2
    page = await (await app_client.get("/directory?q=财务")).text()
    assert "张三" in page and "李四" not in page
    user = (await (await app_client.get("/api/users?q=E100")).json())["users"][0]
    await app_client.patch(f"/api/users/{user['id']}", json={"department": "审计部"})
    history = (await (await app_client.get(f"/api/users/{user['id']}/history")).json())["history"]
    assert [h["field"] for h in history] == ["department", "created"]
    assert history[0]["old"] == "财务部" and history[0]["new"] == "审计部"
    assert (await app_client.get("/api/users/99999/history")).status == 404
    assert (await app_client.get("/api/users/1%2F..%2F2/history")).status in (400, 404)
    actions = [e.action for e in await audit_rows(app_client)]
    assert actions.count("directory.import") == 1 and "user.update" in actions
    nosync = await app_client.post("/api/directory/sync", json={"dry_run": True})
    assert nosync.status == 409


async def test_announcement_audio_is_for_staff_and_only_its_own_file(
    app_client: TestClient, tmp_path: Path
) -> None:
    app = app_client.server.app
    await logged_in(app_client, "lead", "lead1")
    a = await (await app_client.post("/api/announcements", json={
        "kind": "outage", "title": "邮箱故障", "text_zh": "邮箱系统故障，正在抢修。"})).json()  # fmt: skip
    folder = tmp_path / "media" / "announcements"
    wav = folder / f"ann-{a['id']}-zh-0123456789.wav"
    wav.write_bytes(b"RIFF....WAVE")
    (folder / "secret.wav").write_bytes(b"RIFF-secret")
    async with app[SESSIONS].begin() as s:
        from desk.models import Announcement

        row = await s.get(Announcement, a["id"])
        assert row is not None
        row.prompts = {"zh": "/media/announcements/ann-1-zh-0123456789",
                       "en": "/media/announcements/../announcements/secret"}  # fmt: skip
    ok = await app_client.get(f"/announcements/{a['id']}/audio/zh")
    assert ok.status == 200 and ok.headers["Content-Type"] == "audio/wav"
    assert (await app_client.get(f"/announcements/{a['id']}/audio/en")).status == 404
    assert (await app_client.get(f"/announcements/{a['id']}/audio/fr")).status == 404
    anon = browser_like(app_client)
    try:
        r = await anon.get(f"/announcements/{a['id']}/audio/zh", allow_redirects=False)
        assert r.status == 302
    finally:
        await anon.close()
    end = await app_client.patch(f"/api/announcements/{a['id']}",
                                 json={"ends_at": datetime.now(UTC).isoformat()})  # fmt: skip
    assert end.status == 200
    page = await (await app_client.get("/announcements?lang=en")).text()
    assert "Not in force" in page and f"/announcements/{a['id']}/audio/zh" in page
    actions = [e.action for e in await audit_rows(app_client)]
    assert actions[-2:] == ["announcement.create", "announcement.update"]


async def test_parallel_writes_from_two_leads_each_leave_their_own_audit_entry(
    app_client: TestClient,
) -> None:
    await logged_in(app_client, "lead", "lead1")
    start = datetime.now(UTC) + timedelta(hours=1)
    bodies = [{"name": f"值班{i}", "mobile": f"1390000000{i}", "starts_at": start.isoformat(),
               "ends_at": (start + timedelta(hours=8)).isoformat()} for i in range(8)]  # fmt: skip
    results = await asyncio.gather(*(app_client.post("/api/oncall", json=b) for b in bodies))
    assert all(r.status == 201 for r in results)
    entries = [e for e in await audit_rows(app_client) if e.action == "oncall.add"]
    assert sorted(e.target.split(" ", 1)[1] for e in entries) == [f"值班{i}" for i in range(8)]
    week = await (await app_client.get(f"/oncall?week={start.date().isoformat()}")).text()
    assert "值班3" in week
    bad = await app_client.get("/oncall?week=2026-02-30")
    assert bad.status == 400
