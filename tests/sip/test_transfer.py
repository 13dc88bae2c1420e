"""Blind transfer over real SIP: the caller (SIPp through the trunk, keys over RTP) reaches agent
1001's baresip phone; 1001 transfers to 1002 from the page; 1002's page pops with the same
incident and 1002's phone answers; 1002 hands the caller back from the phone (SIP REFER) and
1001's page pops again; the journal keeps one row for the call with each agent's talk, and the
page's transfer is audited."""

import asyncio
import json
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from cti.ami.client import AmiClient
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState
from tests.sip.conftest import KEEP_PRESSING_1, ZHANG, AgentPage, agent_page, sip_server
from tests.support import db
from tests.support.sip import caller_scenario, carrier_call, phones, rtp_pcap
from tests.support.staff import PASSWORD

# Serial: real phones register and answer in real time; with three other workers loading the two
# cores, a phone once took longer than the readiness wait to register.
pytestmark = [pytest.mark.asterisk, pytest.mark.sip, pytest.mark.serial]


async def test_a_blind_transfer_moves_the_call_and_the_pop_to_a_colleague(
    sandbox: Instance, sandbox_state: InstanceState, sim_client: AmiClient, tmp_path: Path
) -> None:
    st = sandbox_state
    http = await sip_server(st, tmp_path, CTI_WRAPUP_SECONDS="2")
    try:
        async with phones(sandbox, st, tmp_path, "1001", "1002") as phone:
            first = await agent_page(http, "wangfang", "1001", "王芳")
            second = await agent_page(http, "liuyang", "1002", "刘洋")  # not ready: no queue call
            try:
                await first.ready()
                pcap = rtp_pcap(tmp_path / "caller.pcap", KEEP_PRESSING_1, 90)
                sipp = await carrier_call(st, tmp_path / "sipp", caller_scenario(*ZHANG, pcap, 240))
                pop = await first.wait(lambda m: m.get("type") == "pop", 150)
                call = pop["call"]
                await first.wait(lambda m: m.get("type") == "answered", 30)
                await phone["1001"].wait_for("CALL_ESTABLISHED", timeout=30)
                # Hostile or impossible targets change nothing.
                for body in ({"kind": "agent", "to": "1001"}, {"kind": "agent", "to": "9999"},
                             {"kind": "queue", "to": "../etc"}, {"kind": "outside", "to": "abc"},
                             {"kind": "fax", "to": "1002"}):  # fmt: skip
                    r = await first.session.post("/api/agent/me/transfer", json=body)
                    assert r.status == 400, (body, await r.text())
                r = await second.session.post("/api/agent/me/transfer",
                                              json={"kind": "agent", "to": "1001"})  # fmt: skip
                assert r.status == 409  # 1002 is on no call
                await asyncio.sleep(1)
                r = await first.session.post(
                    "/api/agent/me/transfer", json={"kind": "agent", "to": "1002"}
                )
                assert r.status == 202, await r.text()
                # The colleague's page pops with the caller's incident; their phone answers.
                pop2 = await second.wait(lambda m: m.get("type") == "pop", 30)
                assert pop2["incident"]["number"] == call["incident_number"]
                assert pop2["call"]["uniqueid"] == call["uniqueid"]
                await phone["1002"].wait_for("CALL_ESTABLISHED", timeout=30)
                await second.wait(lambda m: m.get("type") == "answered", 30)
                await first.wait(lambda m: m.get("type") == "ended", 30)
                await asyncio.sleep(1)
                # 1002 hands the caller back from the phone itself (SIP REFER): the pop follows.
                pops_before = sum(1 for m in first.messages if m.get("type") == "pop")
                r2 = await phone["1002"].command("transfer", f"sip:1001@127.0.0.1:{st.sip_port}")
                assert r2["ok"], r2
                await first.wait(
                    lambda m: (
                        m.get("type") == "pop"
                        and sum(1 for x in first.messages if x.get("type") == "pop") > pops_before
                    ),
                    30,
                )
                await phone["1001"].wait_for("CALL_ESTABLISHED", n=2, timeout=30)
                await asyncio.sleep(1)
                await phone["1001"].command("hangup")
                assert await sipp.wait(120) == 0, sipp.log()
                record = await db.call(tmp_path, call["uniqueid"], timeout=30)
                assert record["outcome"] == "answered" and record["agent"] == "1001"
                legs = record["legs"]
                legs = legs if isinstance(legs, list) else __import__("json").loads(legs)
                assert [(leg["agent"], leg["via"]) for leg in legs] == [
                    ("1001", "queue"),
                    ("1002", "transfer"),
                    ("1001", "transfer"),
                ]
                assert all(leg["talk_seconds"] > 0 for leg in legs), legs
                assert len(db.query(tmp_path, "SELECT id FROM calls WHERE linkedid = ?",
                                    record["linkedid"])) == 1  # fmt: skip
                audit = db.query(tmp_path, "SELECT * FROM audit_log WHERE action = 'transfer'")
                assert [(a["actor"], a["target"]) for a in audit] == [
                    ("wangfang", call["uniqueid"])
                ]
            finally:
                await first.close()
                await second.close()
    finally:
        await http.close()


async def test_an_attended_transfer_consults_the_colleague_then_hands_the_caller_over(
    sandbox: Instance,
    sandbox_state: InstanceState,
    sim_client: AmiClient,
    browser: Browser,
    tmp_path: Path,
) -> None:
    """1001, on the agent page in Chromium, consults 1002 ("consult first"; the caller waits),
    cancels (back to the caller), consults again and completes: 1002's page pops each time their
    phone rings and is told when the cancelled consultation leaves them nothing, the caller ends
    up with 1002, and the journal keeps one row with 1001's part and 1002's."""
    st = sandbox_state
    http = await sip_server(st, tmp_path, CTI_WRAPUP_SECONDS="2")
    try:
        async with phones(sandbox, st, tmp_path, "1001", "1002") as phone:
            first = await agent_page(http, "wangfang", "1001", "王芳")
            second = await agent_page(http, "liuyang", "1002", "刘洋")  # not ready: no queue call
            try:
                await first.ready()
                pcap = rtp_pcap(tmp_path / "caller.pcap", KEEP_PRESSING_1, 90)
                sipp = await carrier_call(st, tmp_path / "sipp", caller_scenario(*ZHANG, pcap, 240))
                call = (await first.wait(lambda m: m.get("type") == "pop", 150))["call"]
                await phone["1001"].wait_for("CALL_ESTABLISHED", timeout=30)
                await first.wait(lambda m: m.get("type") == "answered", 30)
                await asyncio.sleep(1)
                finish = "/api/agent/me/transfer/attended"
                r = await first.session.post(finish, json={"action": "complete"})
                assert r.status == 409  # nothing under way yet
                body = {"kind": "queue", "to": "helpdesk", "mode": "attended"}
                r = await first.session.post("/api/agent/me/transfer", json=body)
                assert r.status == 400  # attended goes to a colleague
                attended = {"kind": "agent", "to": "1002", "mode": "attended"}

                def pops(page: AgentPage) -> int:
                    return sum(1 for m in page.messages if m.get("type") == "pop")

                # 1001's agent page in Chromium (Mandarin): the call is on, the form is there.
                ui = await browser.new_page(locale="zh-CN")
                await ui.goto(str(http.make_url("/login")))
                await ui.fill("input[name=username]", "wangfang")
                await ui.fill("input[name=password]", PASSWORD)
                await ui.click("button[type=submit]")
                await ui.wait_for_url("**/agent")
                await expect(ui.locator("#transfer-form")).to_be_visible(timeout=15000)
                await expect(ui.locator("#transfer-consult")).to_have_text("先咨询")

                async def consult() -> None:
                    await ui.select_option("#transfer-form select[name=kind]", "agent")
                    await ui.fill("#transfer-form input[name=to]", "1002")
                    await ui.click("#transfer-consult")
                    await expect(ui.locator("#consult-bar")).to_be_visible(timeout=15000)
                    await expect(ui.locator("#transfer-form")).to_be_hidden()

                # Consult, then cancel: 1001 is back with the caller, 1002's phone hangs up.
                await consult()
                pop2 = await second.wait(lambda m: m.get("type") == "pop", 30)
                assert pop2["incident"]["number"] == call["incident_number"]
                assert pop2["call"]["uniqueid"] == call["uniqueid"]
                await phone["1002"].wait_for("CALL_ESTABLISHED", timeout=30)
                await asyncio.sleep(1)
                r = await first.session.post("/api/agent/me/transfer", json=attended)
                assert r.status == 409  # one at a time
                r = await second.session.post(finish, json={"action": "cancel"})
                assert r.status == 409  # not 1002's transfer
                await expect(ui.locator("#consult-cancel")).to_have_text("取消转接")
                await ui.click("#consult-cancel")
                await expect(ui.locator("#consult-bar")).to_be_hidden(timeout=15000)
                await expect(ui.locator("#transfer-form")).to_be_visible()
                await phone["1002"].wait_for("CALL_CLOSED", timeout=30)
                # 1002 talked to 1001 only: their page learns the call did not become theirs.
                gone = await second.wait(lambda m: m.get("type") == "ring_ended", 30)
                assert gone["uniqueid"] == call["uniqueid"] and gone["result"] == "lost"
                await asyncio.sleep(1.5)
                assert phone["1001"].count("CALL_CLOSED") == 0
                # Consult again, and complete from the page: 1001's phone hangs up.
                await consult()
                await second.wait(lambda m: m.get("type") == "pop" and pops(second) >= 2, 30)
                await phone["1002"].wait_for("CALL_ESTABLISHED", n=2, timeout=30)
                await asyncio.sleep(1.5)
                await ui.click("#consult-complete")
                await phone["1001"].wait_for("CALL_CLOSED", timeout=30)
                await expect(ui.locator("#pop")).to_have_class("grid pop ended", timeout=15000)
                await first.wait(lambda m: m.get("type") == "ended", 30)
                await second.wait(lambda m: m.get("type") == "answered", 30)
                await asyncio.sleep(1.5)
                assert phone["1002"].count("CALL_CLOSED") == 1  # only the cancelled consultation
                await phone["1002"].command("hangup")
                assert await sipp.wait(120) == 0, sipp.log()
                record = await db.call(tmp_path, call["uniqueid"], timeout=30)
                legs = record["legs"]
                legs = legs if isinstance(legs, list) else json.loads(legs)
                assert [(leg["agent"], leg["via"]) for leg in legs] == [
                    ("1001", "queue"),
                    ("1002", "transfer"),
                ], legs
                assert all(leg["talk_seconds"] > 0 for leg in legs), legs
                assert record["outcome"] == "answered" and record["agent"] == "1002"
                # The caller waited on hold during the consultations (Asterisk's Hold), and
                # only then: the hold lies within 1001's part.
                assert record["holds"] >= 1, record
                assert 0 < record["hold_seconds"] <= legs[0]["talk_seconds"], (record, legs)
                assert len(db.query(tmp_path, "SELECT id FROM calls WHERE linkedid = ?",
                                    record["linkedid"])) == 1  # fmt: skip
                audit = db.query(
                    tmp_path, "SELECT action, actor FROM audit_log WHERE action LIKE 'transfer%'"
                )
                assert sorted(a["action"] for a in audit) == [
                    "transfer", "transfer", "transfer_cancel", "transfer_complete"
                ]  # fmt: skip
                assert {a["actor"] for a in audit} == {"wangfang"}
            finally:
                await first.close()
                await second.close()
    finally:
        await http.close()
