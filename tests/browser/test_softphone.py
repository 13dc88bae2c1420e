"""The agent page's WebRTC softphone in headless Chromium against the real sandbox: an agent with no
desk phone logs in, the page registers their own endpoint to Asterisk over WSS, a simulated caller
comes through the IVR into the queue, the agent answers in the browser and audio flows both ways
(the browser's RTP counters and Asterisk's own), then mutes, holds, keys DTMF and transfers."""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from playwright.async_api import Browser, Page, async_playwright, expect

from cti.ami.client import AmiClient
from cti.errors import AmiActionFailed
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState
from cti.sandbox.webrtc import interface_addresses
from cti.simulate import CallerSpec, SimulationPlan, Simulator
from desk.web.app import create_app
from tests.browser.conftest import CHROMIUM, FLAGS
from tests.conftest import server_settings
from tests.support.amilog import AmiEventLog
from tests.support.staff import PASSWORD, add_staff

pytestmark = [pytest.mark.asterisk, pytest.mark.browser]

# Fake microphone (a beep) and no permission prompt; loopback ICE candidates (the sandbox's
# Asterisk offers 127.0.0.1 only). The sandbox CA is not in Chromium's store, so for this test
# only certificate errors are ignored (test_softphone_tls checks the chain against the CA).
MEDIA_FLAGS = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
    "--ignore-certificate-errors",
]
EXT = "1003"  # a softphone endpoint in asterisk-conf/pjsip_webrtc.conf

RTP_COUNTERS = """() => {
  const pc = window.__softphone.session && window.__softphone.session.connection;
  if (!pc) return null;
  return pc.getStats().then((stats) => {
    const out = {received: 0, sent: 0, pair: null};
    stats.forEach((s) => {
      if (s.type === "inbound-rtp" && s.kind === "audio") out.received = s.packetsReceived;
      if (s.type === "outbound-rtp" && s.kind === "audio") out.sent = s.packetsSent;
      if (s.type === "transport" && s.selectedCandidatePairId) {
        const p = stats.get(s.selectedCandidatePairId);
        const l = stats.get(p.localCandidateId), r = stats.get(p.remoteCandidateId);
        out.pair = [l.address || l.ip, r.address || r.ip || ""];
      }
    });
    return out;
  });
}"""


@pytest.fixture
async def media_browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=[*FLAGS, *MEDIA_FLAGS]
        )
        yield b
        await b.close()


async def softphone_page(browser: Browser, http: TestClient, username: str) -> Page:
    context = await browser.new_context(locale="zh-CN", ignore_https_errors=True)
    page = await context.new_page()
    page.on("pageerror", lambda exc: print("page error:", exc))
    page.on(
        "console", lambda m: print("console:", m.text) if m.type in ("error", "warning") else None
    )
    await page.goto(str(http.make_url("/login")))
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/agent")
    return page


def channelstats(sandbox: Instance, ext: str) -> tuple[int, int]:
    """Asterisk's RTP counters (received, sent) for the agent's PJSIP channel."""
    out = sandbox.cli("pjsip show channelstats")
    for line in out.splitlines():
        words = line.split()
        # BridgeId ChannelId UpTime Codec | Count Lost Pct Jitter (receive) | Count ... (transmit)
        for i, word in enumerate(words):
            if word.startswith(f"{ext}-"):
                return int(words[i + 3]), int(words[i + 7])
    raise AssertionError(f"no channel stats for {ext}:\n{out}")


def softphone_settings(st: InstanceState, tmp_path: Path) -> Any:
    return server_settings(
        st,
        tmp_path,
        CTI_SOFTPHONE_EXTENSIONS=EXT,
        CTI_SOFTPHONE_URL=f"wss://127.0.0.1:{st.wss_port}/ws",
        CTI_SOFTPHONE_KEY=st.softphone_key,
        CTI_WRAPUP_SECONDS="2",
    )


async def test_an_agent_without_a_desk_phone_takes_a_queue_call_in_the_browser(
    media_browser: Browser,
    sim_client: AmiClient,
    sandbox: Instance,
    sandbox_state: InstanceState,
    tmp_path: Path,
) -> None:
    st = sandbox_state
    ami = AmiEventLog(st.ami_host, st.ami_port, st.sim_user, st.sim_secret)
    await ami.start()
    http = TestClient(TestServer(create_app(softphone_settings(st, tmp_path))))
    await http.start_server()
    try:
        await add_staff(http.server.app, "soft_agent", "agent", EXT, name="赵静")
        page = await softphone_page(media_browser, http, "soft_agent")
        sp = page.locator("#softphone")
        await expect(sp).to_have_attribute("data-registration", "registered", timeout=20000)
        await expect(page.locator("#sp-status")).to_contain_text("软电话已就绪")
        # Asterisk has the browser's contact for the agent's endpoint, over WSS.
        contacts = sandbox.cli(f"pjsip show aor {EXT}")
        assert "transport=ws" in contacts.lower() or ";transport=wss" in contacts.lower(), contacts
        await page.click("#btn-ready")
        await expect(page.locator("#agent-state")).to_have_attribute(
            "data-state", "ready", timeout=15000
        )

        caller = CallerSpec(90, 0, "", "13800138000", "张三",
                            reactions={"main_menu": "2", "service_menu": "1"})  # fmt: skip
        sim = Simulator(sim_client, SimulationPlan(rate=1, agents=[], callers=[caller]))
        run = asyncio.create_task(sim.run(timeout=150))
        try:
            # The queue rings the browser; the pop and the softphone both show it.
            await expect(sp).to_have_attribute("data-call", "ringing", timeout=60000)
            await expect(page.locator("#call-number")).to_contain_text("13800138000")
            await page.click("#sp-answer")
            await expect(sp).to_have_attribute("data-call", "talking", timeout=15000)
            await expect(page.locator("#call-phase")).to_have_text("通话中", timeout=15000)

            # Audio both ways: the browser receives the caller's RTP and sends its own, and
            # Asterisk counts the same on the agent's channel; ICE paired loopback addresses.
            # Asterisk offered loopback candidates only, and so did the browser.
            sdps = await page.evaluate(
                "() => [window.__softphone.session.connection.remoteDescription.sdp,"
                " window.__softphone.sentSdp]"
            )
            for sdp in sdps:
                candidates = re.findall(r"a=candidate:\S+ \d+ \S+ \d+ (\S+) ", sdp)
                assert candidates and all(c.startswith("127.") for c in candidates), sdp
            first = await page.evaluate(RTP_COUNTERS)
            a_first = channelstats(sandbox, EXT)
            await asyncio.sleep(3)
            second = await page.evaluate(RTP_COUNTERS)
            a_second = channelstats(sandbox, EXT)
            print(
                "browser RTP", first, "->", second, "; Asterisk (rx, tx)", a_first, "->", a_second
            )
            assert second["received"] > first["received"] + 50, (first, second)
            assert second["sent"] > first["sent"] + 50, (first, second)
            assert a_second[0] > a_first[0] + 50 and a_second[1] > a_first[1] + 50
            # Asterisk's end of the media path is 127.0.0.1 (the only candidate it offered).
            # Chromium gathers on every interface and may send from its socket on this host's own
            # address instead of 127.0.0.1: the kernel delivers that on loopback too, so no media
            # packet leaves the host (Asterisk's RTCP reports name the address it saw).
            assert second["pair"][1] == "127.0.0.1", second
            local = interface_addresses()
            assert second["pair"][0] in local, second
            await ami.wait_for("RTCPReceived", lambda e: f"PJSIP/{EXT}-" in e["Channel"])
            await ami.wait_for("RTCPSent", lambda e: f"PJSIP/{EXT}-" in e["Channel"])
            ends = [(e.get("From") or e.get("To") or "").rsplit(":", 1)[0] for e in ami.events
                    if e["Event"] in ("RTCPReceived", "RTCPSent") and f"PJSIP/{EXT}-" in e["Channel"]]  # fmt: skip
            print("media pair", second["pair"], "; Asterisk's RTCP peers", sorted(set(ends)))
            assert ends and set(ends) <= set(local), ends

            # Mute: the microphone track stops; unmute brings it back.
            await page.click("#sp-mute")
            await expect(page.locator("#sp-mute")).to_have_attribute("aria-pressed", "true")
            enabled = "() => window.__softphone.session.connection.getSenders()[0].track.enabled"
            assert await page.evaluate(enabled) is False
            await page.click("#sp-mute")
            await expect(page.locator("#sp-mute")).to_have_attribute("aria-pressed", "false")
            assert await page.evaluate(enabled) is True

            # DTMF over RTP (RFC 4733): Asterisk receives the digits on the agent's channel.
            await page.fill("#sp-dtmf", "59")
            await page.click("#sp-dtmf-form button")
            for digit in "59":
                await ami.wait_for(
                    "DTMFEnd",
                    lambda e, d=digit: (
                        f"PJSIP/{EXT}-" in e["Channel"]
                        and e.get("Digit") == d
                        and e.get("Direction") == "Received"
                    ),
                )

            # Hold: a re-INVITE Asterisk takes as hold (the caller hears music); then resume.
            await page.click("#sp-hold")
            await ami.wait_for("Hold", lambda e: f"PJSIP/{EXT}-" in e["Channel"])
            await expect(page.locator("#sp-hold")).to_have_attribute("aria-pressed", "true")
            await page.click("#sp-hold")
            await ami.wait_for("Unhold", lambda e: f"PJSIP/{EXT}-" in e["Channel"])
            await expect(page.locator("#sp-hold")).to_have_attribute("aria-pressed", "false")

            # Transfer (SIP REFER, blind) to the desk number: the caller leaves the agent's call
            # for the IVR again and the softphone is free.
            await page.fill("#sp-transfer", "8000")
            await page.click("#sp-transfer-form button")
            transfer = await ami.wait_for("BlindTransfer", timeout=20)
            assert transfer.get("Extension") == "8000", transfer
            await expect(sp).to_have_attribute("data-call", "idle", timeout=15000)
        finally:
            for call in sim.calls.values():
                if call.caller_channel:
                    with contextlib.suppress(AmiActionFailed):
                        await sim_client.action("Hangup", Channel=call.caller_channel)
            await asyncio.wait_for(run, 60)
    finally:
        await ami.close()
        await http.close()
