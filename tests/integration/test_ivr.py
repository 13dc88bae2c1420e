"""The IVR against the real Asterisk: the incident opened before the queue and read back,
caller lookup, status by phone, wrong keys and silence, the survey, the fallback to the queue."""

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import update

from cti.ami.client import AmiClient
from cti.live.model import StateCounter
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState
from cti.simulate import AgentSpec, CallerSpec, SimulationPlan, SimulationResult, Simulator
from desk.models import User
from desk.web.app import create_app
from desk.web.keys import SESSIONS
from tests.conftest import server_settings
from tests.integration.test_sandbox_prompts import in_root
from tests.support import db
from tests.support.staff import logged_in

pytestmark = pytest.mark.asterisk
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
AGENTS = [AgentSpec("1001", (1, 1), (2, 3))]


async def ivr_server(st: InstanceState, tmp_path: Path, hours: str = "open") -> TestClient:
    settings = server_settings(st, tmp_path, CTI_CONFIG_DIR=str(FIXTURES / "config" / hours))
    client = TestClient(TestServer(create_app(settings)))
    await client.start_server()
    await db.import_users(tmp_path, FIXTURES / "users.csv")
    await logged_in(client, "lead")
    return client


async def simulate(
    sim_client: AmiClient, callers: list[CallerSpec], agents: list[AgentSpec] = AGENTS
) -> SimulationResult:
    sim = Simulator(sim_client, SimulationPlan(rate=2, agents=agents, callers=callers))
    await sim.setup_agents()
    return await sim.run(timeout=240)


async def test_pressing_1_opens_an_incident_and_reads_its_number_back(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    http = await ivr_server(sandbox_state, tmp_path)
    moves_before = StateCounter.unexpected
    try:
        known = CallerSpec(
            120, 0, "", "13800138000", "张三", reactions={"main_menu": "1", "survey_intro": "4"}
        )
        unknown = CallerSpec(
            120,
            0,
            "",
            "13511112222",
            "访客",
            reactions={"main_menu": "1", "identify_unknown": "10087#", "incident_repeat": "*"},
        )
        result = await simulate(sim_client, [known, unknown])
        calls = {c.caller.number: c for c in result.calls}
        for number, call in calls.items():
            incident = db.incident_of_call(tmp_path, call.uniqueid)
            assert incident is not None, number
            # What Asterisk executed on the channel, as AMI reported it, spoke exactly its digits.
            said = [c for c in call.commands if c.startswith("SAY DIGITS")]
            assert said and all(c.split('"')[1] == incident["number"] for c in said), said
            assert incident["number"].isdigit() and incident["number"].startswith(
                datetime.now(UTC).astimezone().strftime("%y")
            )
            assert incident["channel"] == "phone" and incident["recorded_by"] == "IVR"
            assert incident["type"] == "fault" and incident["category"] == "故障报告"
            assert incident["state"] == "new"
            record = await db.call(tmp_path, call.uniqueid)
            assert record["incident_number"] == incident["number"]
            assert record["ivr_path"].startswith("main:1")
            assert record["ivr_entered_at"] and record["ivr_left_at"] and record["queued_at"]
            assert record["outcome"] == "answered"
        # Recognised by the phone number: every 6.3.1.2 d field from the directory.
        z = db.incident_of_call(tmp_path, calls["13800138000"].uniqueid)
        assert (z["requester_name"], z["requester_department"], z["requester_location"]) == (
            "张三",
            "信息中心",
            "北京总部 3楼",
        )
        assert (
            z["requester_mobile"] == "13800138000"
            and z["requester_email"] == "zhangsan@example.com"
        )
        # Unknown number: identified by the employee number keyed in.
        v = db.incident_of_call(tmp_path, calls["13511112222"].uniqueid)
        assert v["requester_name"] == "李四" and v["caller_number"] == "13511112222"
        # * repeats the number.
        assert len([c for c in calls["13511112222"].commands if c.startswith("SAY DIGITS")]) == 2
        # The survey score is stored with the call, the incident and the agent.
        survey = db.survey_of_call(tmp_path, calls["13800138000"].uniqueid)
        assert survey is not None and survey["score"] == 4 and survey["agent"] == "1001"
        assert survey["incident_number"] == z["number"] and z["satisfaction"] == 4
        assert (await db.call(tmp_path, calls["13800138000"].uniqueid))["survey_score"] == 4
        steps = db.ivr_steps(tmp_path, calls["13800138000"].uniqueid)
        assert [s["step"] for s in steps][:3] == ["lookup", "main_menu", "incident"]
        assert all(s["seconds"] >= 0 for s in steps)
        # IVR -> queue -> agent -> back to the IVR for the survey: each a move the table allows.
        assert StateCounter.unexpected == moves_before
    finally:
        await http.close()


async def test_status_by_phone(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    http = await ivr_server(sandbox_state, tmp_path)
    try:
        mine = await db.make_incident(tmp_path, "13800138000", state="resolved")
        other = await db.make_incident(tmp_path, "13900139000", state="resolved")
        going = await db.make_incident(tmp_path, "13800138000", state="in_progress")
        callers = [
            CallerSpec(
                120,
                0,
                "",
                "13800138000",
                "张三",
                reactions={"main_menu": "3", "status_enter": f"{mine}#", "resolved_confirm": "1"},
            ),
            CallerSpec(
                120,
                0,
                "",
                "13800138000",
                "张三",
                reactions={
                    "main_menu": "3",
                    "status_enter": f"{other}#|{going}#",
                    "status_more": "3",
                },
            ),
            CallerSpec(
                120,
                0,
                "",
                "13800138000",
                "张三",
                reactions={"main_menu": "3", "status_enter": "999999999#|12#"},
            ),
        ]
        result = await simulate(sim_client, callers)
        first, second, third = sorted(result.calls, key=lambda c: c.uniqueid)
        assert db.incident(tmp_path, mine)["state"] == "closed"
        assert "closed_thanks" in first.prompts
        # Another caller's incident: the state, but no closing or reopening.
        assert db.incident(tmp_path, other)["state"] == "resolved"
        assert "status_other_caller" in second.prompts and "resolved_confirm" not in second.prompts
        assert "state_in_progress" in second.prompts
        # Wrong numbers: told so, twice, then back to the menu (where silence leads to an agent).
        assert third.prompts.count("status_not_found") == 2
        assert third.prompts[third.prompts.index("status_not_found") + 2] == "status_not_found"
        assert (await db.call(tmp_path, third.uniqueid))["ivr_path"] == "main:3>main:silence"
        history = db.incident_history(tmp_path, mine)
        assert [h["to_state"] for h in history][-1] == "closed" and "IVR" in history[-1]["by"]
    finally:
        await http.close()


async def test_wrong_keys_and_silence_still_reach_an_agent(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    http = await ivr_server(sandbox_state, tmp_path)
    try:
        callers = [
            CallerSpec(150, 0, "", "13800138000", "张三", reactions={"main_menu": "7|8|#"}),
            CallerSpec(150, 0, "", "13800138000", "张三"),  # says nothing at all
        ]
        result = await simulate(sim_client, callers)
        wrong, silent = sorted(result.calls, key=lambda c: c.uniqueid)
        for call, why in ((wrong, "retries"), (silent, "silence")):
            record = await db.call(tmp_path, call.uniqueid)
            assert record["outcome"] == "answered", call.prompts
            assert record["ivr_path"] == f"main:{why}"
            incident = db.incident_of_call(tmp_path, call.uniqueid)
            assert incident["type"] == "consultation"
        assert wrong.prompts.count("invalid_choice") == 3
        # Silence: the menu, "no key was pressed", the menu once more, then a person.
        assert silent.prompts.count("main_menu") == 2 and silent.prompts.count("no_input") == 1
        assert silent.prompts.index("transfer_agent") > silent.prompts.index("main_menu", 1)
    finally:
        await http.close()


async def test_keys_pressed_during_a_prompt_act_at_once(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    """Barge-in: `cti simulate --keys 2w1` keys as the welcome starts; the 2 answers the main
    menu without it being played, the 1 cuts the service menu short. A wrong key pressed during
    "invalid choice" answers the menu too."""
    http = await ivr_server(sandbox_state, tmp_path)
    try:
        plan = SimulationPlan(rate=2, agents=AGENTS, calls=1, keys="2w1", patience=(90, 90))
        sim = Simulator(sim_client, plan)
        await sim.setup_agents()
        (keyed,) = (await sim.run(timeout=240)).calls
        wrong = CallerSpec(90, 0, "", "13800138000", "张三", reactions={"main_menu": "7", "invalid_choice": "0"})  # fmt: skip
        (corrected,) = (await simulate(sim_client, [wrong])).calls

        assert "main_menu" not in keyed.prompts, keyed.prompts
        record = await db.call(tmp_path, keyed.uniqueid)
        assert record["ivr_path"].startswith("main:2>service:1")  # then 6.2: which account
        assert db.incident_of_call(tmp_path, keyed.uniqueid)["category"] == "密码重置"
        assert keyed.queued_at is not None

        assert corrected.prompts.count("main_menu") == 1, corrected.prompts
        assert (await db.call(tmp_path, corrected.uniqueid))["ivr_path"] == "main:0"
        steps = db.ivr_steps(tmp_path, keyed.uniqueid)
        assert [s["result"] for s in steps if s["step"] == "main_menu"] == ["barge-in"]
    finally:
        await http.close()


async def test_english_menu_and_queue(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    http = await ivr_server(sandbox_state, tmp_path)
    try:
        caller = CallerSpec(60, 0, "", "13800138000", "张三", reactions={"main_menu": "9|0"})
        agents = [AgentSpec("1001", (1, 1), (2, 2))]
        sim = Simulator(
            sim_client, SimulationPlan(rate=1, agents=agents, callers=[caller], queue="helpdesk-en")
        )
        await sim.setup_agents()
        (call,) = (await sim.run(timeout=120)).calls
        assert call.prompts.count("main_menu") == 2
        assert 'EXEC "Set" "CHANNEL(language)=en"' in call.commands
        record = await db.call(tmp_path, call.uniqueid)
        assert record["language"] == "en" and record["queue"] == "helpdesk-en"
        assert db.incident_of_call(tmp_path, call.uniqueid)["category"] == "Agent"
    finally:
        await http.close()


async def test_without_the_cti_server_calls_still_reach_the_queue(
    sim_client: AmiClient, sandbox_state: InstanceState
) -> None:
    # Nothing listens on the sandbox's FastAGI port: AGI() fails and the dialplan queues the call.
    result = await simulate(sim_client, [CallerSpec(30, 0, "", "13800138000", "张三")])
    (call,) = result.calls
    assert call.result == "answered" and call.queued_at is not None
    assert not call.commands  # no AGI command ran


async def test_a_port_probe_does_not_hurt_the_ivr(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    http = await ivr_server(sandbox_state, tmp_path)
    try:
        for payload in (b"", b"GET / HTTP/1.0\r\n\r\n", b"agi_network_script: ivr\n"):
            _, w = await asyncio.open_connection("127.0.0.1", sandbox_state.agi_port)
            w.write(payload)
            await w.drain()
            w.close()
        _, idle = await asyncio.open_connection("127.0.0.1", sandbox_state.agi_port)  # says nothing
        result = await simulate(
            sim_client, [CallerSpec(60, 0, "", "13800138000", "张三", reactions={"main_menu": "1"})]
        )
        assert db.incident_of_call(tmp_path, result.calls[0].uniqueid) is not None
        idle.close()
    finally:
        await http.close()


async def test_after_hours_voicemail_becomes_an_incident_with_the_recording(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    http = await ivr_server(sandbox_state, tmp_path, hours="closed")
    try:
        caller = CallerSpec(
            90,
            0,
            "",
            "13800138000",
            "张三",
            reactions={"after_hours_menu": "1", "voicemail_intro": "wwwwwwwwwwwwwwwwwwww#"},
        )
        (call,) = (await simulate(sim_client, [caller])).calls
        assert call.prompts[0] == "welcome" and "after_hours_menu" in call.prompts
        # The hours are stated by the catalogue's prompt, or (once synthesised) by the prompt
        # made from the hours in force (desk/hours.py).
        assert "after_hours" in call.prompts or any(
            "announcements/hours-zh-" in c for c in call.commands
        )
        assert any(c.startswith("RECORD FILE") for c in call.commands)
        incident = db.incident_of_call(tmp_path, call.uniqueid)
        assert incident is not None and incident["channel"] == "voicemail"
        assert incident["requester_name"] == "张三"
        recording = Path(sandbox_state.media_dir) / incident["recording"]
        assert recording.exists() and recording.stat().st_size > 1000
        said = [c for c in call.commands if c.startswith("SAY DIGITS")]
        assert said and said[0].split('"')[1] == incident["number"]
        record = await db.call(tmp_path, call.uniqueid)
        assert record["outcome"] == "voicemail" and record["queued_at"] is None
    finally:
        await http.close()


async def test_after_hours_urgent_fault_goes_to_the_on_call_mobile(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    http = await ivr_server(sandbox_state, tmp_path, hours="closed")
    try:
        caller = CallerSpec(40, 0, "", "13900139000", "李四", reactions={"after_hours_menu": "2"})
        (call,) = (await simulate(sim_client, [caller])).calls
        assert "oncall_transfer" in call.prompts
        incident = db.incident_of_call(tmp_path, call.uniqueid)
        assert incident is not None and incident["category"] == "紧急故障(值班)"
        record = await db.call(tmp_path, call.uniqueid)
        assert (
            record["outcome"] == "transferred" and record["incident_number"] == incident["number"]
        )
    finally:
        await http.close()


async def test_known_outage_is_announced_and_the_caller_linked(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    http = await ivr_server(sandbox_state, tmp_path)
    try:
        resp = await http.post("/api/announcements", json={
            "kind": "outage", "title": "邮件系统故障", "service": "mail",
            "text_zh": "邮件系统目前无法登录，工程师正在处理。",
            "text_en": "E-mail is down; engineers are working on it.",
        })  # fmt: skip
        assert resp.status == 201, await resp.text()
        ann = await resp.json()
        assert ann["audio"] == ["en", "zh"]
        callers = [
            CallerSpec(60, 0, "", "13800138000", "张三", reactions={"outage_affected": "1"}),
            CallerSpec(60, 0, "", "13900139000", "李四", reactions={"main_menu": "0"}),
        ]
        result = await simulate(sim_client, callers)
        affected, other = sorted(result.calls, key=lambda c: c.uniqueid)
        assert any(f"announcements/ann-{ann['id']}-zh-" in c for c in affected.commands)
        linked = db.incident_of_call(tmp_path, affected.uniqueid)
        assert linked["announcement_id"] == ann["id"]
        assert "outage_linked" in affected.prompts
        assert (await db.call(tmp_path, affected.uniqueid))["outcome"] == "ended_in_ivr"
        assert db.incident_of_call(tmp_path, other.uniqueid)["announcement_id"] is None
        # Withdrawn: no longer played.
        await http.delete(f"/api/announcements/{ann['id']}")
        (later,) = (
            await simulate(
                sim_client,
                [CallerSpec(30, 0, "", "13800138000", "张三", reactions={"main_menu": "0"})],
            )
        ).calls
        assert "announcement_intro" not in later.prompts
    finally:
        await http.close()


@pytest.mark.postgresql
async def test_a_caller_pressing_star_again_and_again_is_served_and_journaled_on_postgresql(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    """`*` repeats the menu; 36 of them make a 258-character IVR path. PostgreSQL refuses that in
    a VARCHAR(200) (SQLite keeps it), which crashed the IVR for the caller and failed the
    journal's batch again and again, so that no call was recorded any more."""
    http = await ivr_server(sandbox_state, tmp_path)
    try:
        keys = "|".join(["*"] * 36 + ["1"])
        stars = CallerSpec(150, 0, "", "13800138000", "张三", reactions={"main_menu": keys})
        (call,) = (await simulate(sim_client, [stars])).calls
        assert call.prompts.count("main_menu") == 37
        assert "system_error" not in call.prompts, "the IVR crashed for this caller"
        incident = db.incident_of_call(tmp_path, call.uniqueid)
        assert incident is not None and incident["type"] == "fault"
        assert incident["menu_path"].startswith("main:*>main:*")
        assert len(incident["menu_path"]) <= 200
        record = await db.call(tmp_path, call.uniqueid)
        assert record["ivr_path"].startswith("main:*>main:*") and len(record["ivr_path"]) <= 200
        assert record["outcome"] == "answered" and record["incident_number"] == incident["number"]
        # The journal goes on recording the calls that follow.
        after = CallerSpec(60, 0, "", "13900139000", "李四", reactions={"main_menu": "0"})
        (later,) = (await simulate(sim_client, [after])).calls
        assert (await db.call(tmp_path, later.uniqueid))["outcome"] == "answered"
        journal = (await (await http.get("/healthz")).json())["journal"]
        assert journal["rejected_rows"] == 0, journal
    finally:
        await http.close()


async def forge_session(port: int, script: str, uniqueid: str, *, source: str = "127.0.0.1") -> int:
    """Play Asterisk on the FastAGI port, as anyone who reaches it could: a session of route
    `script` for a caller at 13800138000 who keys 1 at every prompt. The number of commands
    the server sent (0: it refused the session)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    head = {"agi_network_script": script, "agi_request": f"agi://127.0.0.1:{port}/{script}",
            "agi_channel": "PJSIP/carrier-00000001", "agi_uniqueid": uniqueid,
            "agi_callerid": "13800138000", "agi_language": "zh"}  # fmt: skip
    commands = 0
    try:
        writer.write("".join(f"{k}: {v}\n" for k, v in head.items()).encode() + b"\n")
        await writer.drain()
        async with asyncio.timeout(60):
            while line := (await reader.readline()).decode().strip():
                commands += 1
                if line.startswith("GET VARIABLE"):
                    value = {"CHANNEL(language)": "zh", "MEMBERNAME": "1001"}.get(
                        line.split('"')[1]
                    )
                    answer = f"200 result=1 ({value})" if value else "200 result=0"
                elif line.startswith(("STREAM FILE", "WAIT FOR DIGIT", "GET DATA")):
                    answer = "200 result=49 endpos=0"  # the key 1
                else:
                    answer = "200 result=0"
                writer.write(answer.encode() + b"\n")
                await writer.drain()
    except ConnectionError:
        pass  # refused: the server closed the connection
    finally:
        writer.close()
    return commands


async def test_forged_fastagi_sessions_are_refused_before_any_route_runs(
    sandbox_state: InstanceState, tmp_path: Path
) -> None:
    """Anyone who reached the FastAGI port opened incidents and set satisfaction scores. Now a
    session needs an allowed source address (by default the AMI host and loopback: 127.0.0.1,
    not the rest of 127.0.0.0/8) and the dialplan's shared secret in its URL."""
    http = await ivr_server(sandbox_state, tmp_path)
    port, key = sandbox_state.agi_port, sandbox_state.agi_secret
    try:
        forged = {
            "no-key": await forge_session(port, "survey", "forged-no-key"),
            "wrong-key": await forge_session(port, "survey?key=guessed", "forged-wrong-key"),
            "other-host": await forge_session(
                port, f"survey?key={key}", "forged-other-host", source="127.0.0.3"
            ),
            "ivr": await forge_session(port, "ivr", "forged-ivr"),
        }
        assert forged == {"no-key": 0, "wrong-key": 0, "other-host": 0, "ivr": 0}
        for name in forged:
            assert db.incident_of_call(tmp_path, f"forged-{name}") is None
            assert db.survey_of_call(tmp_path, f"forged-{name}") is None
        # The same sessions, from Asterisk's address with the key, do what they say.
        assert await forge_session(port, f"ivr?key={key}", "asterisk-ivr") > 0
        assert await forge_session(port, f"survey?key={key}", "asterisk-survey") > 0
        assert db.incident_of_call(tmp_path, "asterisk-ivr") is not None
        assert db.survey_of_call(tmp_path, "asterisk-survey")["score"] == 1
    finally:
        await http.close()


async def test_after_hours_the_on_call_transfer_dials_the_engineer_on_the_roster(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    """The roster, not hours.yaml's single number (13900000003): a lead puts an engineer on call
    and the next after-hours caller's transfer dials them; the prompt states the hours."""
    http = await ivr_server(sandbox_state, tmp_path, hours="closed")
    try:
        await logged_in(http, "lead")
        now = datetime.now(UTC)
        added = await http.post(
            "/api/oncall",
            json={"name": "赵六", "mobile": "13900000006",
                  "starts_at": (now - timedelta(hours=1)).isoformat(),
                  "ends_at": (now + timedelta(hours=2)).isoformat()},
        )  # fmt: skip
        assert added.status == 201
        caller = CallerSpec(40, 0, "", "13900139000", "李四", reactions={"after_hours_menu": "2"})
        (call,) = (await simulate(sim_client, [caller])).calls
        assert "oncall_transfer" in call.prompts
        sets = [c for c in call.commands if "CTI_ONCALL_NUMBER" in c]
        assert sets and "13900000006" in sets[0], call.commands
        record = await db.call(tmp_path, call.uniqueid)
        assert record["outcome"] == "transferred"
    finally:
        await http.close()


async def test_a_password_request_for_a_privileged_account_is_refused_by_phone(
    sim_client: AmiClient, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    """6.2: the caller names the account; a privileged one is refused with the reason said, the
    request goes to the administrators' group, and the caller is not queued. The caller's own,
    ordinary account goes to an agent as before."""
    http = await ivr_server(sandbox_state, tmp_path)
    try:
        async with http.server.app[SESSIONS].begin() as s:
            await s.execute(update(User).where(User.employee_no == "10087").values(privileged=True))
        refused = CallerSpec(
            120,
            0,
            "",
            "13800138000",
            "张三",
            reactions={"main_menu": "2", "service_menu": "1", "account_enter": "10087#"},
        )
        own = CallerSpec(
            120,
            0,
            "",
            "13800138000",
            "张三",
            reactions={"main_menu": "2", "service_menu": "1", "account_enter": "#",
                       "survey_intro": "4"},
        )  # fmt: skip
        result = await simulate(sim_client, [refused, own])
        first, second = sorted(result.calls, key=lambda c: c.uniqueid)
        assert "privileged_refused" in first.prompts and "transfer_agent" not in first.prompts
        incident = db.incident_of_call(tmp_path, first.uniqueid)
        assert incident is not None and incident["account"] == "10087"
        assert incident["escalated_to"] == "系统管理员组"
        assert incident["state"] == "escalated_incident" and incident["category"] == "密码重置"
        said = [c for c in first.commands if c.startswith("SAY DIGITS")]
        assert said and said[0].split('"')[1] == incident["number"]
        record = await db.call(tmp_path, first.uniqueid)
        assert record["queued_at"] is None and "account:privileged" in record["ivr_path"]
        ordinary = db.incident_of_call(tmp_path, second.uniqueid)
        assert ordinary is not None and ordinary["account"] == "10086"
        assert ordinary["escalated_to"] is None and ordinary["state"] == "new"
        assert "privileged_refused" not in second.prompts and "transfer_agent" in second.prompts
    finally:
        await http.close()


async def test_a_recorded_queue_is_announced_in_mandarin_then_english_before_the_queue(
    sim_client: AmiClient, sandbox: Instance, sandbox_state: InstanceState, tmp_path: Path
) -> None:
    """CTI_RECORD_QUEUES=helpdesk: a caller for helpdesk hears "this call may be recorded" in
    Mandarin then in English before joining the queue (Asterisk opened and played both files:
    STREAM FILE's endpos is past 0), and the call is recorded; a caller for the English queue,
    not recorded, hears no notice."""
    settings = server_settings(sandbox_state, tmp_path, CTI_RECORD_QUEUES="helpdesk",
                               CTI_CONFIG_DIR=str(FIXTURES / "config" / "open"))  # fmt: skip
    http = TestClient(TestServer(create_app(settings)))
    await http.start_server()
    try:
        await db.import_users(tmp_path, FIXTURES / "users.csv")
        zh = CallerSpec(60, 0, "", "13800138000", "张三", reactions={"main_menu": "0"})
        (call,) = (await simulate(sim_client, [zh])).calls
        notices = [c for c in call.commands if "recording_notice" in c]
        assert notices == [
            'STREAM FILE "zh/cti/recording_notice" ""',
            'STREAM FILE "en/cti/recording_notice" ""',
        ], call.commands
        # Asterisk played both: each STREAM FILE succeeded, and the English one started only
        # once the Mandarin one had run its length (the stand-in lasts 1.2 s; a file Asterisk
        # cannot open returns at once), from the files the sandbox has for them.
        assert [r.split(" -> ")[1] for r in call.results if "recording_notice" in r] == [
            "200 Success",
            "200 Success",
        ], call.results
        starts = [t for p, t in zip(call.prompts, call.prompts_at, strict=True)
                  if p == "recording_notice"]  # fmt: skip
        after = call.prompts_at[call.prompts.index("recording_notice") + 2 :]
        assert starts[1] - starts[0] >= 1.0 and (not after or after[0] - starts[1] >= 1.0)
        for lang in ("zh", "en"):
            sound = f"{sandbox.sounds.data_inner}/sounds/{lang}/cti/recording_notice.wav"
            assert in_root(sandbox.root, sound).is_file(), sound
        at = [
            t for p, t in zip(call.prompts, call.prompts_at, strict=True) if p == "recording_notice"
        ]
        assert call.queued_at is not None and max(at) < call.queued_at
        assert call.prompts.index("recording_notice") > call.prompts.index("transfer_agent")
        assert db.query(tmp_path, "SELECT id FROM call_recordings WHERE call_uniqueid = ?",
                        call.uniqueid)  # fmt: skip
        en = CallerSpec(60, 0, "", "13800138000", "张三", reactions={"main_menu": "9|0"})
        agents = [AgentSpec("1001", (1, 1), (2, 2))]
        sim = Simulator(
            sim_client, SimulationPlan(rate=1, agents=agents, callers=[en], queue="helpdesk-en")
        )
        await sim.setup_agents()
        (other,) = (await sim.run(timeout=120)).calls
        assert (await db.call(tmp_path, other.uniqueid))["queue"] == "helpdesk-en"
        assert "recording_notice" not in other.prompts and "transfer_agent" in other.prompts
    finally:
        await http.close()
