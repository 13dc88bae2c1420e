"""Malformed input the outside review sent to the running server, each of which answered 500: a
digit that is not 0-9 in a record id, dates at the ends of the calendar, a lone surrogate in
JSON, and true where a number belongs. Each must get a 400 that names the field, and change
nothing."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cti.phone import NumberPlan
from desk.directory import upsert_user
from desk.web.keys import SESSIONS
from tests.support.staff import add_staff, login
from tests.support.web import desk_server, from_address


async def _staff(server: Any, browser: aiohttp.ClientSession, role: str) -> None:
    await add_staff(server.app, f"{role}1", role, "1001")
    await login(browser, f"{role}1")


async def _refused(r: aiohttp.ClientResponse, field: str) -> None:
    assert r.status == 400, f"{r.method} {r.url}: {r.status} {await r.text()}"
    body = await r.json()
    assert field in body["message"], body


@pytest.mark.parametrize(
    "raw", ["%C2%B2", "%D9%A3", "1%C2%B2", "99999999999999999999999", "-1", "%20"]
)
async def test_record_ids_are_plain_numbers(tmp_path: Path, raw: str) -> None:
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as lead:
        await _staff(server, lead, "lead")
        for method, path, body in (("PATCH", "/api/users/", {"name": "x"}),
                                   ("PATCH", "/api/knowledge/", {"title": "x"}),
                                   ("PATCH", "/api/cmdb/", {"status": "down"}),
                                   ("PATCH", "/api/announcements/", {"title": "x"}),
                                   ("DELETE", "/api/announcements/", None),
                                   ("DELETE", "/api/oncall/", None)):  # fmt: skip
            r = await lead.request(method, f"{path}{raw}", json=body)
            await _refused(r, "id")


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [("/api/calls", {"since": "0001-01-01"}, "since"),
     ("/api/calls", {"until": "0001-01-01T00:00:00"}, "until"),
     ("/api/calls", {"since": "9999-12-31T23:59:59-12:00"}, "since"),
     ("/api/oncall", {"at": "0001-01-01T00:00:00"}, "at"),
     ("/reports/view", {"kind": "daily", "date": "9999-12-31", "format": "csv"}, "date"),
     ("/reports/view", {"kind": "monthly", "date": "9999-12-01", "format": "csv"}, "date"),
     ("/reports/view", {"kind": "daily", "date": "0001-01-01", "format": "csv"}, "date"),
     ("/reports/view", {"kind": "custom", "date": "2026-11-01", "end": "9999-12-31", "format": "csv"}, "end"),
     ("/api/exports/requests", {"since": "0001-01-01"}, "since"),
     ("/api/exports/requests", {"since": "2026-11-01", "until": "9999-12-31"}, "until")],
)  # fmt: skip
async def test_dates_at_the_ends_of_the_calendar(
    tmp_path: Path, path: str, params: dict[str, str], field: str
) -> None:
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as lead:
        await _staff(server, lead, "lead")
        await _refused(await lead.get(path, params=params), field)


async def test_dates_at_the_ends_of_the_calendar_in_bodies(tmp_path: Path) -> None:
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as lead:
        await _staff(server, lead, "lead")
        r = await lead.post(
            "/api/reports", json={"kind": "weekly", "date": "9999-12-31", "formats": ["csv"]}
        )
        await _refused(r, "date")
        r = await lead.post("/api/announcements", json={"kind": "info", "title": "t", "text_zh": "x",
                                                        "starts_at": "0001-01-01T00:00:00"})  # fmt: skip
        await _refused(r, "starts_at")
        r = await lead.post("/api/oncall", json={"name": "x", "mobile": "13900000001",
                                                 "starts_at": "2026-01-01T00:00:00",
                                                 "ends_at": "9999-12-31T23:59:59-12:00"})  # fmt: skip
        await _refused(r, "ends_at")
        assert (await (await lead.get("/api/announcements")).json())["announcements"] == []


async def test_a_custom_report_covers_at_most_a_year(tmp_path: Path) -> None:
    """Found by schemathesis as a request that took over a minute: a report has a row per day,
    and a custom one from 1970 to 9000 took 16 s and 1.5 GB of memory as CSV (a PDF never
    finished)."""
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as lead:
        await _staff(server, lead, "lead")
        body = {"kind": "custom", "date": "2025-01-01", "end": "2026-01-02", "formats": ["csv"]}
        await _refused(await lead.post("/api/reports", json=body), "end")
        body["end"] = "2026-01-01"  # 366 days
        assert (await lead.post("/api/reports", json=body)).status == 201


async def test_a_lone_surrogate_in_json_is_refused(tmp_path: Path) -> None:
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as agent:
        await _staff(server, agent, "agent")
        raw = b'{"type": "fault", "symptom": "\\ud800 printer"}'
        r = await agent.post(
            "/api/incidents", data=raw, headers={"Content-Type": "application/json"}
        )
        await _refused(r, "symptom")
        raw = b'{"type": "fault", "symptom": "x", "phone": "13912345678", "name": {"\\udfff": 1}}'
        r = await agent.post(
            "/portal/api/requests", data=raw, headers={"Content-Type": "application/json"}
        )
        assert r.status == 400
        listed = await (await agent.get("/api/incidents", params={"state": "all"})).json()
        assert listed["incidents"] == []


@pytest.mark.postgresql
async def test_a_nul_character_is_refused_wherever_text_comes_in(
    tmp_path: Path, pg_url: str
) -> None:
    """PostgreSQL cannot take NUL in text: schemathesis found a GET /api/calls and a PATCH
    /api/cmdb/{id} with a NUL answering 500 there, and GET /api/users?q=a%00 does too. Refused at
    the door (on any database)."""
    async with (
        desk_server(tmp_path, CTI_DATABASE_URL=pg_url) as server,
        from_address(server, "127.0.0.2") as lead,
    ):
        await _staff(server, lead, "lead")
        await _refused(await lead.get("/api/calls", params={"queue": "help\x00desk"}), "queue")
        await _refused(await lead.get("/api/calls/abc%00def"), "uniqueid")
        await _refused(await lead.get("/api/search", params={"q": "\x00"}), "q")
        await _refused(await lead.get("/api/users", params={"q": "a\x00"}), "q")
        await _refused(await lead.post("/api/cmdb", json={"name": "mail\x00"}), "name")
        await _refused(
            await lead.patch("/api/incidents/1", json={"symptom": "x", "\x00": 1}), "field name"
        )
        r = await lead.post(
            "/portal/api/requests", json={"symptom": "x\x00", "phone": "13912345678"}
        )
        await _refused(r, "symptom")
        r = await lead.post("/login", data={"username": "lead1\x00", "password": "x"})
        assert r.status == 400
        assert (await (await lead.get("/api/cmdb")).json())["items"] == []


@pytest.mark.postgresql
async def test_directory_fields_fit_their_columns(tmp_path: Path, pg_url: str) -> None:
    """PostgreSQL refuses text longer than a column (SQLite stores it): a name of 121 characters
    or a phone field of 61 was taken by PATCH /api/users (which allowed 200) and failed there."""
    async with (
        desk_server(tmp_path, CTI_DATABASE_URL=pg_url) as server,
        from_address(server, "127.0.0.2") as agent,
    ):
        await _staff(server, agent, "agent")
        async with server.app[SESSIONS].begin() as s:
            user, _ = await upsert_user(s, {"employee_no": "E1", "name": "张三"}, by="t",
                                        now=datetime.now(UTC), plan=NumberPlan(area_code="10"))  # fmt: skip
        for field, value in (("name", "张" * 121), ("office_phone", "13800138000;" * 5 + "1")):
            r = await agent.patch(f"/api/users/{user.id}", json={field: value})
            await _refused(r, field)
        found = await (await agent.get("/api/users", params={"q": "E1"})).json()
        assert found["users"][0]["name"] == "张三"


async def test_true_is_not_a_number(tmp_path: Path) -> None:
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as agent:
        await _staff(server, agent, "agent")
        r = await agent.post(
            "/api/incidents", json={"type": "fault", "symptom": "x", "user_id": True}
        )
        await _refused(r, "user_id")
        r = await agent.post("/api/incidents", json={"type": "fault", "symptom": "x"})
        number = (await r.json())["number"]
        await _refused(
            await agent.patch(f"/api/incidents/{number}", json={"priority": True}), "priority"
        )
        await _refused(
            await agent.patch(f"/api/incidents/{number}", json={"priority": 1.0}), "priority"
        )
        # Found by schemathesis: a list where a name belongs was looked up in a set (500).
        await _refused(await agent.patch(f"/api/incidents/{number}", json={"type": [[]]}), "type")
        assert (await (await agent.get(f"/api/incidents/{number}")).json())["priority"] == 3


@pytest.mark.parametrize("raw", ["%C2%B9", "%D9%A3", "%EF%BC%91"])  # ¹, Arabic-Indic 3, fullwidth 1
async def test_digits_that_are_not_0_to_9_in_paths_are_refused(tmp_path: Path, raw: str) -> None:
    """str.isdigit() takes '¹' (which int() refuses: it was a 500 on /api/mail/attachments) and
    '١'/'１' (which int() reads as 1): every id and number in a path is ASCII digits only."""
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as lead:
        await _staff(server, lead, "lead")
        for path in (f"/api/mail/attachments/{raw}", f"/api/incidents/{raw}",
                     f"/api/incidents/{raw}/messages", f"/media/incidents/{raw}/voicemail",
                     f"/incidents/{raw}", f"/recordings/{raw}"):  # fmt: skip
            r = await lead.get(path)
            assert r.status in (400, 404), f"{path}: {r.status} {await r.text()}"
