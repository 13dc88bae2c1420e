"""The HTTP API on a real SQLite file: filters, pagination, bad input, health."""

from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from cti.journal import repo
from cti.live.model import LiveCall
from cti.sandbox.instance import InstanceState
from cti.settings import load_settings
from cti.types import CallOutcome
from desk.web.app import create_app
from desk.web.keys import SESSIONS
from tests.conftest import server_settings
from tests.support.staff import logged_in

T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC).timestamp()  # 09:00 in Shanghai


def finished(i: int, outcome: CallOutcome, queue: str = "helpdesk") -> LiveCall:
    c = LiveCall(
        f"u{i:03d}", f"u{i:03d}", f"PJSIP/carrier-{i}", T0 + i * 60, caller_number="13800138000"
    )
    c.queued_at, c.queue = T0 + i * 60 + 5, queue
    if outcome == CallOutcome.ANSWERED:
        c.answered_at, c.agent = T0 + i * 60 + 15, "1001"
    c.finish(T0 + i * 60 + 40)
    c.outcome = outcome
    return c


@pytest.fixture
async def http(tmp_path: Path) -> TestClient:
    env = {"CTI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
           "CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "x",
           "CTI_DATA_DIR": str(tmp_path)}  # fmt: skip
    app = create_app(load_settings(None, env), with_core=False)
    client = TestClient(TestServer(app))
    await client.start_server()
    calls = [finished(i, [CallOutcome.ANSWERED, CallOutcome.ABANDONED, CallOutcome.QUEUE_TIMEOUT][i % 3],
                      "helpdesk-en" if i % 5 == 0 else "helpdesk") for i in range(30)]  # fmt: skip
    async with app[SESSIONS].begin() as session:
        await repo.upsert_calls(session, [c.to_row(T0) for c in calls])
    await logged_in(client, "lead")
    yield client
    await client.close()


async def test_filters_and_pagination(http: TestClient) -> None:
    body = await (await http.get("/api/calls", params={"outcome": "answered", "limit": "4"})).json()
    assert body["total"] == 10 and len(body["calls"]) == 4
    assert all(c["outcome"] == "answered" for c in body["calls"])
    page2 = await (
        await http.get("/api/calls", params={"outcome": "answered", "limit": "4", "offset": "4"})
    ).json()
    assert not {c["uniqueid"] for c in body["calls"]} & {c["uniqueid"] for c in page2["calls"]}
    q = await (await http.get("/api/calls", params={"queue": "helpdesk-en"})).json()
    assert q["total"] == 6
    # 09:10 to 09:20 desk time (Asia/Shanghai) is 01:10 to 01:20 UTC: calls 10..19.
    r = await (
        await http.get(
            "/api/calls", params={"since": "2026-11-20T09:10", "until": "2026-11-20T09:20"}
        )
    ).json()
    assert sorted(c["uniqueid"] for c in r["calls"]) == [f"u{i:03d}" for i in range(10, 20)]
    one = await (await http.get("/api/calls/u003")).json()
    assert one["arrived_at"] == datetime.fromtimestamp(T0 + 180, UTC).isoformat()


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"since": "yesterday"}, "since"),
        ({"outcome": "won"}, "outcome"),
        ({"limit": "0"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"offset": "-1"}, "offset"),
        ({"since": "2026-11-21", "until": "2026-11-20"}, "until must be after since"),
    ],
)
async def test_bad_input_gets_a_clear_400(
    http: TestClient, params: dict[str, str], message: str
) -> None:
    resp = await http.get("/api/calls", params=params)
    assert resp.status == 400
    assert message in (await resp.json())["message"]


async def test_unknown_call_is_404(http: TestClient) -> None:
    resp = await http.get("/api/calls/no-such-call")
    assert resp.status == 404 and "no-such-call" in (await resp.json())["message"]


async def test_call_log_page_renders_both_languages(http: TestClient) -> None:
    zh = await (await http.get("/calls")).text()
    assert "来电记录" in zh and "已接听" in zh
    en = await (await http.get("/calls", params={"lang": "en"})).text()
    assert "Call log" in en and "Answered" in en


@pytest.mark.asterisk
async def test_healthz_reports_ami_and_database(
    sandbox_state: InstanceState, tmp_path: Path
) -> None:
    async with TestClient(
        TestServer(create_app(server_settings(sandbox_state, tmp_path)))
    ) as client:
        assert await (await client.get("/healthz")).json() == {"ok": True}  # for anyone
        await logged_in(client, "agent")  # the details are for staff
        resp = await client.get("/healthz")
        body = await resp.json()
        assert resp.status == 200 and body["ok"]
        assert body["ami"]["connected"] and body["database"]["ok"]
        assert body["journal"]["resyncs"] >= 0


async def test_healthz_is_503_when_asterisk_is_unreachable(tmp_path: Path) -> None:
    from cti.sandbox.instance import free_port

    env = {"CTI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
           "CTI_AMI_HOST": "127.0.0.1", "CTI_AMI_PORT": str(free_port()),
           "CTI_AMI_USER": "cti", "CTI_AMI_SECRET": "x", "CTI_AGI_PORT": str(free_port()),
           "CTI_MEDIA_DIR": str(tmp_path / "media")}  # fmt: skip
    async with TestClient(TestServer(create_app(load_settings(None, env)))) as client:
        assert (await client.get("/healthz")).status == 503
        await logged_in(client, "agent")
        resp = await client.get("/healthz")
        body = await resp.json()
        assert resp.status == 503 and not body["ami"]["connected"] and body["database"]["ok"]
        assert body["ami"]["last_error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "rumour", "title": "x", "text_zh": "y"}, "kind must be one of"),
        ({"kind": "outage", "text_zh": "y"}, "title is required"),
        ({"kind": "outage", "title": "x"}, "text_zh or text_en is required"),
        ({"kind": "outage", "title": "x", "text_zh": "y", "starts_at": "soon"}, "starts_at"),
        (
            {
                "kind": "outage",
                "title": "x",
                "text_zh": "y",
                "starts_at": "2026-11-25T10:00",
                "ends_at": "2026-11-25T09:00",
            },
            "ends_at must be after starts_at",
        ),
        (
            {"kind": "outage", "title": "x", "text_zh": "y", "colour": "red"},
            "unknown fields: colour",
        ),
        ([1, 2], "expected a JSON object"),
    ],
)
async def test_announcement_bad_input_changes_nothing(
    http: TestClient, body: object, message: str
) -> None:
    resp = await http.post("/api/announcements", json=body)
    assert resp.status == 400 and message in (await resp.json())["message"]
    listed = await (await http.get("/api/announcements")).json()
    assert listed["announcements"] == []


async def test_announcement_lifecycle(http: TestClient) -> None:
    resp = await http.post("/api/announcements", json={"kind": "change", "title": "周六凌晨网络割接",
                                                         "text_zh": "本周六凌晨网络维护。"})  # fmt: skip
    assert resp.status == 201
    a = await resp.json()
    active = await (await http.get("/api/announcements", params={"active": "1"})).json()
    assert [x["id"] for x in active["announcements"]] == [a["id"]]
    patched = await (
        await http.patch(f"/api/announcements/{a['id']}", json={"title": "网络割接（已改期）"})
    ).json()
    assert patched["title"] == "网络割接（已改期）"
    await http.delete(f"/api/announcements/{a['id']}")
    active = await (await http.get("/api/announcements", params={"active": "1"})).json()
    assert active["announcements"] == []
    assert (await http.patch("/api/announcements/999", json={})).status == 404
    assert (await http.post("/api/announcements", data=b"{not json")).status == 400
