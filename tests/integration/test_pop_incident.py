"""The pop finds the IVR's incident by the call's id when the call never heard its number: the
CtiIncident event is lost when the AMI link drops just then (seen in a fresh-clone CI run: the
server's ping went unanswered under load and the agent's pop came without the incident)."""

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from cti.db import create_engine, migrate, session_maker
from cti.ivr.ports import NewIncident
from cti.live.model import LiveCall, view_of
from cti.phone import NumberPlan
from desk.ivr_port import DeskService
from desk.knowledge import KnowledgeService
from desk.migrations import MIGRATIONS
from desk.pop import PopBuilder


def _new(uniqueid: str, symptom: str) -> NewIncident:
    return NewIncident(
        "fault", "网络", symptom, "phone", "13800138000", "+8613800138000", None,
        uniqueid, "zh", "1",
    )  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_pop_finds_the_ivrs_incident_without_its_event(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = (
        request.getfixturevalue("pg_url")
        if backend == "postgresql"
        else f"sqlite+aiosqlite:///{tmp_path / 'cti.sqlite3'}"
    )
    engine = create_engine(url)
    await migrate(engine, MIGRATIONS)
    sessions = session_maker(engine)
    plan = NumberPlan(area_code="10")
    desk = DeskService(sessions, plan, ZoneInfo("Asia/Shanghai"))
    pops = PopBuilder(sessions, KnowledgeService(sessions), plan)
    try:
        earlier = await desk.open_incident(_new("1700000000.1", "打印机卡纸"))
        ours = await desk.open_incident(_new("1700000100.7", "VPN 断了"))
        call = LiveCall("1700000100.7", "1700000100.7", "PJSIP/carrier-1", 1_700_000_100.0,
                        caller_number="13800138000")  # fmt: skip

        # No CtiIncident reached the tracker: the incident is found by the call's id ...
        pop = await pops.build(view_of(call, 1_700_000_110.0), "ringing")
        assert pop["incident"]["number"] == ours
        assert [i["number"] for i in pop["open_incidents"]] == [earlier]

        # ... the number the event gave wins when there is one ...
        call.incident_number = earlier
        pop = await pops.build(view_of(call, 1_700_000_110.0), "ringing")
        assert pop["incident"]["number"] == earlier

        # ... and a call the IVR opened nothing for has no incident, only the caller's history.
        other = LiveCall("1700000200.3", "1700000200.3", "PJSIP/carrier-2", 1_700_000_200.0,
                         caller_number="13800138000")  # fmt: skip
        pop = await pops.build(view_of(other, 1_700_000_210.0), "ringing")
        assert pop["incident"] is None
        assert sorted(i["number"] for i in pop["open_incidents"]) == sorted([earlier, ours])
    finally:
        await engine.dispose()
