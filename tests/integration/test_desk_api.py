"""The desk's HTTP API on a real SQLite file and a real local SMTP server (aiosmtpd): login and
sessions, roles, CSRF, incidents through their whole life, e-mail notices, knowledge matching,
the self-service portal and the OpenAPI description. No Asterisk is needed here."""

import asyncio
import email
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from aiosmtpd.controller import Controller
from sqlalchemy import update

from cti.phone import NumberPlan
from cti.sandbox.instance import free_port
from cti.settings import load_settings
from desk.directory import upsert_user
from desk.models import Incident
from desk.web.app import create_app
from desk.web.keys import SESSIONS
from tests.support.staff import PASSWORD, add_staff, browser_like, logged_in, login


class Inbox:
    """An aiosmtpd handler that keeps every message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Any:
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller, inbox
    controller.stop()


def settings_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"CTI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
            "CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "x",
            "CTI_DATA_DIR": str(tmp_path), **extra}  # fmt: skip


@pytest.fixture
async def app_client(tmp_path: Path, smtp: Any) -> AsyncIterator[TestClient]:
    controller, _ = smtp
    env = settings_env(tmp_path, CTI_SMTP_HOST="127.0.0.1", CTI_SMTP_PORT=str(controller.port),
                       CTI_MAIL_OUTBOX_SECONDS="0.2")  # fmt: skip
    client = TestClient(TestServer(create_app(load_settings(None, env), with_core=False)))
    await client.start_server()
    yield client
    await client.close()


async def test_login_sets_a_safe_cookie_and_wrong_passwords_are_limited(
    app_client: TestClient,
) -> None:
    await add_staff(app_client.server.app, "zhangwei", "agent", "1001")
    resp = await app_client.post(
        "/api/login", json={"username": "zhangwei", "password": "wrong password"}
    )
    assert resp.status == 401
    resp = await app_client.post("/api/login", json={"username": "zhangwei", "password": PASSWORD})
    assert resp.status == 200
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "cti_session=" in cookie
    assert (await resp.json())["staff"]["extension"] == "1001"
    # Five failures lock the name out, even for the right password afterwards.
    for _ in range(5):
        r = await app_client.post(
            "/api/login", json={"username": "zhangwei", "password": "guess guess"}
        )
        assert r.status in (401, 429)
    r = await app_client.post("/api/login", json={"username": "zhangwei", "password": PASSWORD})
    assert r.status == 429
    # Bad bodies get clear messages.
    r = await app_client.post("/api/login", data=b"{nope")
    assert r.status == 400 and "JSON" in (await r.json())["message"]


async def test_login_form_and_pages_redirect(app_client: TestClient) -> None:
    resp = await app_client.get("/agent", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login")
    await add_staff(app_client.server.app, "lisi", "agent", "1002", name="李四 <b>")
    page = await app_client.get("/login")
    assert "登录" in await page.text()
    assert (
        page.headers["X-Frame-Options"] == "DENY"
        and "script-src 'self'" in page.headers["Content-Security-Policy"]
    )
    bad = await app_client.post("/login", data={"username": "lisi", "password": "x"})
    assert bad.status == 401 and "用户名或密码错误" in await bad.text()
    ok = await app_client.post(
        "/login", data={"username": "lisi", "password": PASSWORD}, allow_redirects=False
    )
    assert ok.status == 302 and ok.headers["Location"] == "/agent"
    agent_page = await (await app_client.get("/agent")).text()
    assert "李四 &lt;b&gt;" in agent_page and "李四 <b>" not in agent_page  # escaped output


async def test_roles_are_enforced_on_every_route(app_client: TestClient) -> None:
    assert (await app_client.get("/api/incidents")).status == 401
    await logged_in(app_client, "agent")
    assert (await app_client.get("/api/incidents")).status == 200
    for method, path, body in [("POST", "/api/announcements", {"kind": "info", "title": "x", "text_zh": "x"}),
                               ("POST", "/api/knowledge", {"title": "x", "body": "y"}),
                               ("POST", "/api/cmdb", {"name": "x"}),
                               ("POST", "/api/oncall", {"name": "x", "mobile": "13900000001"}),
                               ("GET", "/api/wallboard", None), ("GET", "/api/alerts", None),
                               ("GET", "/wallboard", None), ("GET", "/ws/wallboard", None)]:  # fmt: skip
        resp = await app_client.request(method, path, json=body)
        assert resp.status == 403, path
    async with browser_like(app_client) as lead:
        await logged_in(lead, "lead", app=app_client.server.app)
        resp = await lead.post(
            "/api/knowledge", json={"title": "VPN 连接失败", "body": "重新安装客户端"}
        )
        assert resp.status == 201
    # Every staff route in the OpenAPI description says which role it needs.
    doc = await (await app_client.get("/api/openapi.json")).json()
    assert doc["paths"]["/api/knowledge"]["post"]["x-required-role"] == "lead"
    assert doc["paths"]["/api/incidents"]["get"]["x-required-role"] == "agent"
    assert "/ws/agent" in doc["paths"] and "/portal/api/requests" in doc["paths"]


async def test_csrf_token_is_required_for_changes(app_client: TestClient) -> None:
    await logged_in(app_client, "agent")
    del app_client.session.headers["X-CSRF-Token"]
    body = {"type": "fault", "symptom": "打印机卡纸"}
    assert (await app_client.post("/api/incidents", json=body)).status == 403
    resp = await app_client.post("/api/incidents", json=body, headers={"X-CSRF-Token": "forged"})
    assert resp.status == 403
    listed = await (await app_client.get("/api/incidents?state=all")).json()
    assert listed["incidents"] == []  # nothing was created


async def test_incident_life_with_notices_by_email(app_client: TestClient, smtp: Any) -> None:
    _, inbox = smtp
    await logged_in(app_client, "agent", "wangfang")
    resp = await app_client.post("/api/incidents", json={"type": "fault", "symptom": "Outlook 无法登录邮箱",
                                                          "caller_number": "13800138000"})  # fmt: skip
    assert resp.status == 201
    inc = await resp.json()
    number = inc["number"]
    assert (
        inc["state"] == "new" and inc["assignee"] == "wangfang" and inc["sla_remaining_seconds"] > 0
    )
    # Bad input: a clear message and nothing changes.
    for body in ({"priority": 9}, {"type": "complaint"}, {"symptom": 5}, {}):
        r = await app_client.patch(f"/api/incidents/{number}", json=body)
        assert r.status == 400, body
    assert (await app_client.patch("/api/incidents/999999999", json={"priority": 1})).status == 404
    assert (await app_client.patch("/api/incidents/abc", json={"priority": 1})).status == 400
    same = await (await app_client.get(f"/api/incidents/{number}")).json()
    assert same["priority"] == 3 and same["type"] == "fault"
    r = await app_client.patch(
        f"/api/incidents/{number}", json={"priority": 2, "category": "邮件/登录"}
    )
    assert r.status == 200 and (await r.json())["priority"] == 2
    # The requester has no e-mail yet: the notice is skipped, and the history says so.
    r = await app_client.post(f"/api/incidents/{number}/resolve", json={"text": "重置了密码"})
    assert r.status == 200
    body = await r.json()
    assert body["state"] == "resolved" and body["first_line_resolved"] is True
    assert body["notice"]["sent"] is False
    # Closing needs the user's confirmation.
    r = await app_client.post(f"/api/incidents/{number}/close", json={})
    assert r.status == 400 and "confirm" in (await r.json())["message"]
    r = await app_client.post(f"/api/incidents/{number}/close", json={"confirmed": True})
    assert (await r.json())["state"] == "closed"
    r = await app_client.post(f"/api/incidents/{number}/resolve", json={"text": "again"})
    assert r.status == 409

    # A second incident, for a requester with an e-mail address: escalated, then resolved.
    async with app_client.server.app[SESSIONS].begin() as s:
        user, _ = await upsert_user(s, {"employee_no": "E1001", "name": "张三", "department": "财务部",
                                        "location": "A座3楼", "office_phone": "010-62345678",
                                        "mobile": "13800138000", "email": "zhangsan@example.com"},
                                    by="test", now=datetime.now(UTC), plan=NumberPlan(area_code="10"))  # fmt: skip
        user_id = user.id
    r = await app_client.post(
        "/api/incidents", json={"type": "fault", "symptom": "VPN 连不上", "user_id": user_id}
    )
    second = (await r.json())["number"]
    r = await app_client.post(
        f"/api/incidents/{second}/escalate", json={"to": "incident", "group": "网络组"}
    )
    assert r.status == 400  # a reason is required
    r = await app_client.post(f"/api/incidents/{second}/escalate",
                              json={"to": "incident", "group": "网络组", "reason": "需要查看防火墙"})  # fmt: skip
    assert r.status == 200 and (await r.json())["notice"]["sent"] is True
    r = await app_client.post(f"/api/incidents/{second}/resolve", json={"text": "防火墙规则已修复"})
    assert (await r.json())["first_line_resolved"] is False
    for _ in range(100):
        if len(inbox.messages) >= 3:
            break
        await asyncio.sleep(0.1)
    # The acknowledgement of the new incident (from the outbox) and the two notices.
    subjects = [m["Subject"] for m in inbox.messages]
    assert len(subjects) == 3 and all(second in str(s) for s in subjects)
    assert all(m["To"] == "zhangsan@example.com" for m in inbox.messages)
    assert sum(m["Auto-Submitted"] == "auto-generated" for m in inbox.messages) == 1
    for _ in range(50):  # the outbox records the acknowledgement once the server took it
        hist = (await (await app_client.get(f"/api/incidents/{second}")).json())["history"]
        kinds = [h["kind"] for h in hist]
        if "ack" in kinds:
            break
        await asyncio.sleep(0.1)
    assert kinds.count("notice") == 2 and kinds.count("ack") == 1
    assert all(h["by"].endswith("(wangfang)") for h in hist[1:] if h["kind"] != "ack")
    # The open list has neither closed nor resolved-and-closed incidents, and is ordered by SLA.
    opened = await (await app_client.get("/api/incidents")).json()
    assert [i["number"] for i in opened["incidents"]] == [second]
    assert (await app_client.get("/api/incidents?state=bogus")).status == 400


async def test_notice_to_an_unreachable_smtp_server_is_recorded(tmp_path: Path) -> None:
    env = settings_env(tmp_path, CTI_SMTP_HOST="127.0.0.1", CTI_SMTP_PORT=str(free_port()))
    async with TestClient(
        TestServer(create_app(load_settings(None, env), with_core=False))
    ) as client:
        await logged_in(client, "agent")
        r = await client.post(
            "/api/incidents", json={"type": "consultation", "symptom": "如何申请权限"}
        )
        number = (await r.json())["number"]
        async with client.server.app[SESSIONS].begin() as s:
            await s.execute(update(Incident).values(requester_email="x@example.com"))
        r = await client.post(
            f"/api/incidents/{number}/notes", json={"text": "已在处理", "notify": True}
        )
        assert r.status == 201
        notice = (await r.json())["notice"]
        assert notice["sent"] is False and notice["error"]
        hist = (await (await client.get(f"/api/incidents/{number}")).json())["history"]
        assert [h["kind"] for h in hist][-2:] == ["note", "notice_failed"]


async def test_knowledge_matching_ranks_chinese_and_english(app_client: TestClient) -> None:
    await logged_in(app_client, "lead")
    articles = [
        ("Outlook 邮箱无法登录", "邮箱登录失败时，先检查密码是否过期，再清除凭据缓存。", "mail"),
        ("打印机卡纸处理", "打开前盖，取出卡住的纸张。", "print"),
        ("VPN client cannot connect", "Reinstall the VPN client and check the certificate.", "vpn"),
        ("Printer paper jam", "Open the front cover and remove the jammed paper.", "print"),
    ]
    for title, body, service in articles:
        r = await app_client.post(
            "/api/knowledge", json={"title": title, "body": body, "service": service}
        )
        assert r.status == 201
    r = await app_client.post("/api/cmdb", json={"name": "邮件服务器 mail01", "service": "mail", "owner": "系统组",
                                                  "status": "degraded", "description": "Exchange 邮箱服务"})  # fmt: skip
    assert r.status == 201
    assert (
        await app_client.post("/api/cmdb", json={"name": "x", "status": "on fire"})
    ).status == 400
    zh = await (await app_client.get("/api/search", params={"q": "我的邮箱登录不了"})).json()
    assert zh["knowledge"][0]["title"] == "Outlook 邮箱无法登录"
    assert zh["cmdb"][0]["name"] == "邮件服务器 mail01"
    en = await (
        await app_client.get("/api/search", params={"q": "the printer has a paper jam"})
    ).json()
    assert en["knowledge"][0]["title"] == "Printer paper jam"
    assert all(a["service"] != "vpn" for a in en["knowledge"])  # unrelated articles do not match
    # Substring search would match 打印 inside 打印机; a tokenizer gives the article for 打印机 first.
    zh2 = await (await app_client.get("/api/search", params={"q": "打印机又卡纸了"})).json()
    assert zh2["knowledge"][0]["title"] == "打印机卡纸处理"
    assert (await app_client.get("/api/search", params={"q": ""})).status == 400

    # Changes: the index follows; a rename onto another item's name, an unknown or garbled id and
    # a bad status are refused with a message and change nothing.
    mail01 = (await (await app_client.get("/api/cmdb")).json())["items"][0]
    r = await app_client.post("/api/cmdb", json={"name": "打印服务器 print01", "service": "print"})
    print01 = await r.json()
    r = await app_client.patch(f"/api/cmdb/{print01['id']}", json={"name": mail01["name"]})
    assert r.status == 400 and "exists" in (await r.json())["message"]
    r = await app_client.patch(
        f"/api/cmdb/{mail01['id']}", json={"name": mail01["name"], "status": "down"}
    )
    assert r.status == 200 and (await r.json())["status"] == "down"
    assert (await app_client.patch("/api/cmdb/99999", json={"status": "down"})).status == 404
    assert (await app_client.patch("/api/cmdb/x1", json={"status": "down"})).status == 400
    assert (
        await app_client.patch(f"/api/cmdb/{print01['id']}", json={"status": "?"})
    ).status == 400
    items = {i["name"]: i for i in (await (await app_client.get("/api/cmdb")).json())["items"]}
    assert items["打印服务器 print01"]["status"] == print01["status"]
    vpn = next(a for a in (await (await app_client.get("/api/knowledge")).json())["articles"]
               if a["service"] == "vpn")  # fmt: skip
    r = await app_client.patch(
        f"/api/knowledge/{vpn['id']}", json={"title": "VPN 无法连接 cannot connect"}
    )
    assert r.status == 200 and (await r.json())["body"] == vpn["body"]
    found = await (await app_client.get("/api/search", params={"q": "VPN 无法连接"})).json()
    assert found["knowledge"][0]["title"] == "VPN 无法连接 cannot connect"
    assert (await app_client.patch("/api/knowledge/99999", json={"title": "t"})).status == 404


async def test_portal_lookup_submit_and_limits(app_client: TestClient) -> None:
    r = await app_client.post("/portal/api/requests", json={"type": "service_request", "symptom": "申请开通 VPN 账号",
                                                             "phone": "13912345678", "name": "赵六",
                                                             "email": "zhaoliu@example.com"})  # fmt: skip
    assert r.status == 201, await r.text()
    number = (await r.json())["number"]
    assert number.isdigit()
    r = await app_client.get(
        f"/portal/api/incidents/{number}", params={"phone": "+86 139 1234 5678"}
    )
    assert r.status == 200 and (await r.json())["state"] == "new"
    r = await app_client.get(f"/portal/api/incidents/{number}", params={"phone": "13800000000"})
    assert r.status == 404
    # Not JSON: refused (a cross-site form cannot post JSON).
    r = await app_client.post("/portal/api/requests", data={"symptom": "x", "phone": "13912345678"})
    assert r.status == 415
    r = await app_client.post("/portal/api/requests", json={"symptom": "", "phone": "13912345678"})
    assert r.status == 400
    r = await app_client.post("/portal/api/requests", json={"symptom": "x", "phone": "not a phone"})
    assert r.status == 400
    # The HTML form: without the page's token it is refused; with it, the number is shown.
    page = await app_client.get("/portal")
    assert "自助服务" in await page.text()
    token = page.cookies["cti_portal"].value
    r = await app_client.post(
        "/portal/requests", data={"token": "wrong", "symptom": "x", "phone": "13912345678"}
    )
    assert r.status == 403
    r = await app_client.post("/portal/requests", data={"token": token, "symptom": "<script>alert(1)</script>",
                                                        "phone": "13912345678", "type": "fault"})  # fmt: skip
    assert r.status == 201
    html = await r.text()
    assert "<script>alert(1)</script>" not in html
    r = await app_client.post(
        "/portal/lookup", data={"token": token, "number": number, "phone": "13912345678"}
    )
    assert r.status == 200 and "已受理" in await r.text()
    # Guessing is slow: ten failed lookups from one address, then 429 even for a right pair.
    for i in range(10):
        await app_client.get(
            f"/portal/api/incidents/{int(number) + 100 + i}", params={"phone": "13912345678"}
        )
    r = await app_client.get(f"/portal/api/incidents/{number}", params={"phone": "13912345678"})
    assert r.status == 429


async def test_staff_cli_adds_and_lists(tmp_path: Path) -> None:
    env = {**os.environ, **settings_env(tmp_path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cti", "staff", "add", "zhaolei", "--name", "赵磊", "--role", "lead",
        "--extension", "1009", "--password-stdin", env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await proc.communicate(b"a long enough password\n")
    assert proc.returncode == 0, err.decode()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cti", "staff", "add", "bad", "--extension", "12ab", "--password-stdin",
        env=env, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _out, err = await proc.communicate(b"a long enough password\n")
    assert proc.returncode == 1 and "extension" in err.decode()
    async with TestClient(
        TestServer(create_app(load_settings(None, settings_env(tmp_path)), with_core=False))
    ) as c:
        await login(c, "zhaolei", "a long enough password")
        me = await (await c.get("/api/agent/me")).json()
        assert me["staff"]["role"] == "lead" and me["staff"]["name"] == "赵磊"
