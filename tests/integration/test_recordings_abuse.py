"""The recording routes against people who should not hear a call and hostile input: another
agent, no session, ids that are not ids, a path-like name, many requests at once, a deletion by
an agent, a forged cross-site delete. Retention deletes old audio and keeps the row."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cti.journal.models import CallRecording
from desk import retention
from desk.retention import RetentionPolicy
from desk.web.keys import SESSIONS
from tests.support import db
from tests.support.staff import add_staff, login
from tests.support.web import desk_server, from_address

WAV = b"RIFF" + bytes(40) + bytes(range(256)) * 40


async def _recording(server: object, media: Path, uid: str, agent: str, days_old: int = 0) -> int:
    (media / "calls").mkdir(parents=True, exist_ok=True)
    (media / "calls" / f"{uid}.wav").write_bytes(WAV)
    started = datetime.now(UTC) - timedelta(days=days_old)
    async with server.app[SESSIONS].begin() as s:  # type: ignore[attr-defined]
        rec = CallRecording(call_uniqueid=uid, linkedid=uid, queue="helpdesk", agent=agent,
                            incident_number="261130001", file=f"calls/{uid}.wav",
                            started_at=started)  # fmt: skip
        s.add(rec)
        await s.flush()
        return rec.id


async def test_recordings_are_heard_only_by_their_agent_and_leads(tmp_path: Path) -> None:
    media = tmp_path / "media"
    async with desk_server(tmp_path, CTI_MEDIA_DIR=str(media)) as server:
        rid = await _recording(server, media, "1764460000.1", "1001")
        await add_staff(server.app, "mine", "agent", "1001")
        await add_staff(server.app, "other", "agent", "1003")
        await add_staff(server.app, "lead1", "lead", "1002")
        async with (
            from_address(server, "127.0.0.2") as nobody,
            from_address(server, "127.0.0.3") as mine,
            from_address(server, "127.0.0.4") as other,
            from_address(server, "127.0.0.5") as lead,
        ):
            url = f"/recordings/{rid}"
            r = await nobody.get(url, allow_redirects=False)
            assert r.status in (302, 401)
            r = await nobody.get("/api/recordings", params={"call": "1764460000.1"})
            assert r.status == 401
            await login(mine, "mine")
            await login(other, "other")
            await login(lead, "lead1")
            r = await mine.get(url)
            assert r.status == 200 and await r.read() == WAV
            r = await mine.get(url, headers={"Range": "bytes=4-13"})
            assert r.status == 206 and await r.read() == WAV[4:14]
            r = await mine.get(url, headers={"Range": "bytes=999999-"})
            assert r.status == 416
            assert (await other.get(url)).status == 404
            listed = await (
                await other.get("/api/recordings", params={"call": "1764460000.1"})
            ).json()
            assert listed["recordings"] == []
            listed = await (
                await lead.get("/api/recordings", params={"incident": "261130001"})
            ).json()
            assert [x["id"] for x in listed["recordings"]] == [rid]
            for bad in (
                "0",
                "-1",
                "1.0",
                "%C2%B2",
                "99999999999999999999999",
                "..%2F..%2Fetc%2Fpasswd",
            ):
                r = await lead.get(f"/recordings/{bad}")
                assert r.status in (400, 404), (bad, r.status)
            r = await lead.get("/api/recordings")
            assert r.status == 400
            r = await lead.get("/api/recordings", params={"call": "x" * 151})
            assert r.status == 400
            # An agent may not delete, nor may a forged request without the CSRF token.
            assert (await mine.delete(f"/api/recordings/{rid}")).status == 403
            token = lead.headers.pop("X-CSRF-Token")
            assert (await lead.delete(f"/api/recordings/{rid}")).status == 403
            lead.headers["X-CSRF-Token"] = token
            # Many plays at once, then the lead's deletions at once: no 500, the file goes once.
            plays = await asyncio.gather(*(mine.get(url) for _ in range(20)))
            assert {p.status for p in plays} == {200}
            dels = await asyncio.gather(*(lead.delete(f"/api/recordings/{rid}") for _ in range(5)))
            assert {d.status for d in dels} == {200}
            assert not (media / "calls" / "1764460000.1.wav").exists()
            assert (await mine.get(url)).status == 404
        audit = db.query(
            tmp_path, "SELECT action, actor FROM audit_log WHERE action LIKE 'recording%'"
        )
        assert ("recording_delete", "lead1") in {(a["action"], a["actor"]) for a in audit}
        assert len([a for a in audit if a["action"] == "recording_delete"]) == 1


async def test_retention_deletes_old_audio_and_keeps_the_row(tmp_path: Path) -> None:
    media = tmp_path / "media"
    async with desk_server(tmp_path, CTI_MEDIA_DIR=str(media)) as server:
        old = await _recording(server, media, "1700000000.1", "1001", days_old=100)
        new = await _recording(server, media, "1764460000.2", "1001", days_old=1)
        policy = RetentionPolicy(recordings_days=90)
        swept = await retention.run(server.app[SESSIONS], policy, datetime.now(UTC), media)
        assert swept.recordings == 1  # one setting and one sweep for voicemail and calls
        assert not (media / "calls" / "1700000000.1.wav").exists()
        assert (media / "calls" / "1764460000.2.wav").exists()
        rows = {r["id"]: r for r in db.query(tmp_path, "SELECT * FROM call_recordings")}
        assert rows[old]["deleted_by"] == "retention" and rows[new]["deleted_at"] is None
