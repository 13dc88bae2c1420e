"""bench.load's machinery with a handful of calls, so it cannot rot: SIPp through the deployed
trunk with RTP + RFC 2833 DTMF into the IVR, incidents, the queue, agents answering, and the
no-lost-record check — which must also catch a lost record, a doubled one and a queue_log call
the journal never saw."""

import sqlite3
from pathlib import Path

import pytest

from bench.load import Step, StepResult, check, drive, load_server, report
from bench.wire import can_capture

# Serial like the rest of the SIP tier: real SIP calls in real time.
pytestmark = [pytest.mark.asterisk, pytest.mark.sip, pytest.mark.serial]


async def test_a_few_carrier_calls_leave_every_record(tmp_path: Path) -> None:
    steps = [Step("few", 3, 3)]
    async with load_server(3) as srv:
        [res] = await drive(srv, steps, rate=2)
        report([res])
        assert res.problems == [], res.problems
        assert (res.sipp_ok, res.sipp_failed, res.rows, res.lost) == (3, 0, 3, 0)
        # Every call keyed 1 over RTP, so every call opened an incident in the IVR.
        assert (res.keyed, res.incidents) == (3, 3)
        assert res.peak_concurrent == 3
        assert len(res.setup) == 3 and len(res.to_agent) == 3 and res.agi
        # The same turnarounds on the wire, where a packet capture can run (CI's root can).
        if can_capture():
            assert len(res.agi_wire) >= len(res.agi) * 0.9, (len(res.agi_wire), len(res.agi))
            assert all(0 <= t < 60 for t in res.agi_wire)
        assert res.server_cpu > 0 and res.asterisk_cpu > 0 and res.server_rss_peak > 0
        numbers = srv.numbers[:3]
        since = res.since

        # The check is not blind. A caller SIPp dialled with no row is a lost record ...
        lost = StepResult("lost", 4)
        await check(srv.db_url, Path(srv.st.queue_log), since, [*numbers, "13799999999"], lost)
        assert lost.lost == 1 and any("no journal row" in p for p in lost.problems)

        # ... a second row for a caller is one too ...
        db2 = tmp_path / "doubled.sqlite3"
        db = Path(srv.db_url.removeprefix("sqlite+aiosqlite:///"))
        with sqlite3.connect(db) as src, sqlite3.connect(db2) as dst:
            src.backup(dst)  # with what the write-ahead log holds
        with sqlite3.connect(db2) as con:
            con.execute(
                "INSERT INTO calls (uniqueid, linkedid, channel, caller_number, caller_name,"
                " dialled_number, arrived_at, ended_at, offers, ring_no_answer, overflows,"
                " outcome, holds, source, inferred, updated_at, agent, incident_number)"
                " SELECT uniqueid || 'x', linkedid, channel, caller_number, caller_name,"
                " dialled_number, arrived_at, ended_at, offers, ring_no_answer, overflows,"
                " outcome, holds, source, inferred, updated_at, agent, incident_number"
                " FROM calls WHERE caller_number = ?",
                (numbers[0],),
            )
        doubled = StepResult("doubled", 3)
        await check(f"sqlite+aiosqlite:///{db2}", Path(srv.st.queue_log), since, numbers, doubled)
        assert doubled.lost == 1 and any("more than one row" in p for p in doubled.problems)

        # ... and so is a call Asterisk queued (queue_log) that the journal has no row for.
        qlog = tmp_path / "queue_log"
        text = Path(srv.st.queue_log).read_text()
        last = text.splitlines()[-1].split("|")
        qlog.write_text(text + f"{last[0]}|999.1|helpdesk|NONE|ENTERQUEUE||13700000009|1\n")
        unseen = StepResult("unseen", 3)
        await check(srv.db_url, qlog, since, numbers, unseen)
        assert any("queue_log calls with no journal row" in p for p in unseen.problems)
