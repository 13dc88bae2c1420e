"""Call recordings play in the browser from the call log and the incident page: a real Chromium
loads the audio through the role-checked /recordings/{id} (a lead hears every call, an agent
only the calls they took) and the player reaches a decoded duration."""

import io
import math
import struct
import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from cti.journal.models import Call, CallRecording
from desk.web.keys import SESSIONS
from tests.support import db
from tests.support.staff import PASSWORD, add_staff
from tests.support.web import desk_server

pytestmark = [pytest.mark.browser]


def _wav(seconds: float) -> bytes:
    """A real 8 kHz mono 16-bit WAV (a 440 Hz tone), as MixMonitor writes."""
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        n = int(8000 * seconds)
        w.writeframes(
            b"".join(
                struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / 8000)))
                for i in range(n)
            )
        )
    return out.getvalue()


async def _call(server: object, media: Path, uid: str, agent: str, incident: str) -> int:
    """A journalled call answered by `agent` on `incident`, with its recording on disk."""
    (media / "calls").mkdir(parents=True, exist_ok=True)
    (media / "calls" / f"{uid}.wav").write_bytes(_wav(2.0))
    at = datetime.now(UTC) - timedelta(minutes=5)
    async with server.app[SESSIONS].begin() as s:  # type: ignore[attr-defined]
        s.add(Call(uniqueid=uid, linkedid=uid, caller_number="13800138000", caller_name="张三",
                   arrived_at=at, answered_at=at + timedelta(seconds=20),
                   talk_ended_at=at + timedelta(seconds=80), ended_at=at + timedelta(seconds=90),
                   queue="helpdesk", agent=agent, outcome="answered", incident_number=incident,
                   wait_seconds=20.0, talk_seconds=60.0, updated_at=at))  # fmt: skip
        rec = CallRecording(call_uniqueid=uid, linkedid=uid, queue="helpdesk", agent=agent,
                            incident_number=incident, file=f"calls/{uid}.wav", started_at=at)  # fmt: skip
        s.add(rec)
        await s.flush()
        return rec.id


async def _login(page: Page, base: str, user: str, path: str) -> None:
    await page.goto(base + path)
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**" + path)


async def _plays(page: Page, selector: str) -> dict[str, float]:
    """Start the player (muted: headless Chromium has no sound card) and wait until the audio
    is decoded and playing; its readyState, duration and position."""
    audio = page.locator(selector)
    await audio.evaluate("a => { a.muted = true; return a.play(); }")
    await page.wait_for_function(
        "s => { const a = document.querySelector(s); return a.readyState >= 2 && a.currentTime > 0; }",
        arg=selector,
        timeout=15000,
    )
    result: dict[str, float] = await audio.evaluate(
        "a => ({ready: a.readyState, duration: a.duration, at: a.currentTime, error: a.error ? a.error.code : 0})"
    )
    return result


async def test_a_lead_plays_any_recording_and_an_agent_only_their_own(
    browser: Browser, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    async with desk_server(tmp_path, CTI_MEDIA_DIR=str(media)) as server:
        base = str(server.make_url("")).rstrip("/")
        incident = await db.make_incident(tmp_path, "13800138000")
        mine = await _call(server, media, "1764460000.1", "1001", incident)
        theirs = await _call(server, media, "1764460000.2", "1003", incident)
        await add_staff(server.app, "wangfang", "agent", "1001")
        await add_staff(server.app, "zhaolei", "lead", "1002")

        lead = await browser.new_page(locale="zh-CN")
        await _login(lead, base, "zhaolei", "/calls")
        # The call log: one player per recorded call; the lead hears both.
        assert await lead.locator("audio.recording").count() == 2
        got = await _plays(lead, f'audio[data-recording="{theirs}"]')
        assert got["error"] == 0 and got["ready"] >= 2, got
        assert 1.9 < got["duration"] < 2.1, got
        # Listening stops the call log's 5 s reload (the player would stop with it).
        await lead.wait_for_timeout(6000)
        assert await lead.locator(f'audio[data-recording="{theirs}"]').evaluate(
            "a => a.currentTime > 0"
        )
        # The incident page: both calls, each with its player.
        await lead.goto(f"{base}/incidents/{incident}")
        await lead.wait_for_selector(f'#calls audio[data-recording="{mine}"]')
        assert await lead.locator("#calls audio.recording").count() == 2
        got = await _plays(lead, f'#calls audio[data-recording="{mine}"]')
        assert 1.9 < got["duration"] < 2.1, got

        agent = await browser.new_page(locale="zh-CN")
        await _login(agent, base, "wangfang", "/calls")
        # Both calls are in the log, but only the agent's own has a player.
        assert await agent.locator("tr[data-uniqueid]").count() == 2
        assert await agent.locator("audio.recording").count() == 1
        assert await agent.locator(f'audio[data-recording="{mine}"]').count() == 1
        got = await _plays(agent, f'audio[data-recording="{mine}"]')
        assert 1.9 < got["duration"] < 2.1, got
        await agent.goto(f"{base}/incidents/{incident}")
        await agent.wait_for_selector(f'#calls audio[data-recording="{mine}"]')
        assert await agent.locator("#calls audio.recording").count() == 1
        # The other agent's recording, asked for by address, is not found.
        r = await agent.request.get(f"{base}/recordings/{theirs}")
        assert r.status == 404
        r = await agent.request.get(f"{base}/recordings/{mine}")
        assert r.status == 200 and (await r.body())[:4] == b"RIFF"
        plays = db.query(tmp_path, "SELECT actor FROM audit_log WHERE action = 'recording_play'")
        assert {p["actor"] for p in plays} == {"zhaolei", "wangfang"}
