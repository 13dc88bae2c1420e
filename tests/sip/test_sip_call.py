"""A call over real SIP end to end: SIPp as the carrier delivers it through the deployed trunk
definition and keys RFC 2833 DTMF into the IVR, which opens an incident and queues it; the
queue rings the agent's baresip phone (PJSIP/<ext>), which answers; the pop reaches that agent's
page; the agent hangs up, wrap-up runs, and the journal row says all of it."""

import asyncio
from pathlib import Path

import pytest

from cti.ami import actions
from cti.ami.client import AmiClient
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState
from desk.web.supervise import REAPER
from tests.sip.conftest import KEEP_PRESSING_1, ZHANG, agent_page, sip_server
from tests.support import db
from tests.support.sip import caller_scenario, carrier_call, phones, rtp_pcap
from tests.support.staff import add_staff, browser_like, login

# Serial: real phones register and answer in real time; with three other workers loading the two
# cores, a phone once took longer than the readiness wait to register.
pytestmark = [pytest.mark.asterisk, pytest.mark.sip, pytest.mark.serial]


async def test_a_carrier_call_reaches_an_agent_on_a_sip_phone(
    sandbox: Instance, sandbox_state: InstanceState, sim_client: AmiClient, tmp_path: Path
) -> None:
    st = sandbox_state
    http = await sip_server(st, tmp_path, CTI_WRAPUP_SECONDS="2", CTI_RECORD_QUEUES="helpdesk")
    try:
        async with phones(sandbox, st, tmp_path, "1001", "1002") as phone:
            page = await agent_page(http, "wangfang", "1001", "王芳")
            # The desk lead sits at 1002 and supervises from the wallboard.
            await add_staff(http.server.app, "lead1002", "lead", "1002", name="赵敏")
            lead = browser_like(http)
            await login(lead, "lead1002")
            try:
                await page.ready()
                sipp = await carrier_call(
                    st,
                    tmp_path / "sipp",
                    caller_scenario(
                        *ZHANG, rtp_pcap(tmp_path / "caller.pcap", KEEP_PRESSING_1, 90), 240
                    ),
                )
                pop = await page.wait(lambda m: m.get("type") == "pop", 150)
                call = pop["call"]
                assert call["caller_number"] == ZHANG[0] and call["queue"] == "helpdesk"
                assert pop["incident"]["number"] == call["incident_number"]
                assert pop["caller"]["name"] == ZHANG[1]
                # baresip answered (auto-answer); the queue connected it to the caller.
                await phone["1001"].wait_for("CALL_ESTABLISHED", timeout=30)
                await page.wait(lambda m: m.get("type") == "answered", 30)
                # Hold from the phone (a re-INVITE): Asterisk's Hold/Unhold reach the page.
                assert (await phone["1001"].command("hold"))["ok"]
                await page.wait(lambda m: m.get("type") == "hold" and m["on_hold"], 30)
                await asyncio.sleep(1.5)
                assert (await phone["1001"].command("resume"))["ok"]
                off = await page.wait(lambda m: m.get("type") == "hold" and not m["on_hold"], 30)
                assert off["hold_seconds"] > 0
                # The lead listens in: their phone rings first, then ChanSpy runs on it.
                r = await lead.post("/api/supervise", json={"agent": "1001", "mode": "listen"})
                assert r.status == 202, await r.text()
                await phone["1002"].wait_for("CALL_ESTABLISHED", timeout=30)
                # Answered, the lead's channel goes from the originate's dial (AppDial2) on to
                # ChanSpy, a moment later on a loaded machine.
                for _ in range(100):
                    spying = [c for c in await actions.core_show_channels(sim_client)
                              if c.channel.startswith("PJSIP/1002-")]  # fmt: skip
                    if [c.application for c in spying] == ["ChanSpy"]:
                        break
                    await asyncio.sleep(0.1)
                assert [c.application for c in spying] == ["ChanSpy"], spying
                # The agent hangs up: the lead's spy leg ends with the agent's part of the call
                # (the server hangs it up: ChanSpy's E waits for a frame from the lead's phone,
                # and this one, an echo, sends nothing once nothing plays to it).
                await phone["1001"].command("hangup")
                await page.wait(lambda m: m.get("type") == "ended", 30)
                await phone["1002"].wait_for("CALL_CLOSED", timeout=30)
                left = [c for c in await actions.core_show_channels(sim_client)
                        if c.channel.startswith("PJSIP/1002-")]  # fmt: skip
                assert left == [], left
                assert http.server.app[REAPER].ended == 1
                # The caller goes on to the survey, says nothing, and Asterisk sends the BYE.
                assert await sipp.wait(120) == 0, sipp.log()
                record = await db.call(tmp_path, call["uniqueid"], timeout=30)
                assert record["outcome"] == "answered" and record["agent"] == "1001"
                assert record["incident_number"] == call["incident_number"]
                assert record["ivr_path"].startswith("main:1"), record["ivr_path"]
                assert record["caller_number"] == ZHANG[0]
                assert record["talk_seconds"] is not None and record["talk_seconds"] > 0
                # Hold measured from the events, within the talk (which contains it).
                assert record["holds"] == 1
                assert 0 < record["hold_seconds"] < record["talk_seconds"]
                audit = db.query(tmp_path, "SELECT * FROM audit_log WHERE action = 'supervise'")
                assert [(a["actor"], a["target"]) for a in audit] == [("lead1002", "1001")]

                # The call was recorded (the queue is a recorded one), linked to call and
                # incident, and the agent who took it plays it, seeking with HTTP Range.
                r = await page.session.get("/api/recordings", params={"call": call["uniqueid"]})
                recs = (await r.json())["recordings"]
                assert [(x["agent"], x["incident_number"]) for x in recs] == [
                    ("1001", call["incident_number"])
                ]
                audio = await page.session.get(recs[0]["url"])
                body = await audio.read()
                assert audio.status == 200 and audio.content_type == "audio/wav"
                assert body[:4] == b"RIFF" and len(body) > 8000  # seconds of 8 kHz audio
                part = await page.session.get(recs[0]["url"], headers={"Range": "bytes=100-199"})
                assert part.status == 206 and await part.read() == body[100:200]
                # Another agent does not even learn it exists; the lead deletes it.
                await add_staff(http.server.app, "liuyang", "agent", "1003")
                async with browser_like(http) as other:
                    await login(other, "liuyang")
                    assert (await other.get(recs[0]["url"])).status == 404
                r = await lead.delete(f"/api/recordings/{recs[0]['id']}")
                assert r.status == 200 and (await r.json())["deleted"]
                assert (await page.session.get(recs[0]["url"])).status == 404
                assert not list((Path(st.media_dir) / "calls").glob(f"{call['uniqueid']}*"))
                incident = db.incident_of_call(tmp_path, call["uniqueid"])
                assert incident is not None and incident["category"] == "故障报告"
            finally:
                await page.close()
                await lead.close()
    finally:
        await http.close()
