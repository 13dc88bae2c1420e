"""The AMI link against the real Asterisk: login, reconnect, watchdog, actions, decoding.

Each panoramisk 1.4 defect from ASTERISK-NOTES.md has a regression test here; where it is cheap,
the same situation is shown to break bare panoramisk, so the test is known to be able to fail.
"""

import asyncio
import subprocess
import sys
import time

import pytest
from panoramisk import Manager
from panoramisk.ami_protocol import AMIProtocol

from cti.ami import events as ev
from cti.ami.client import AmiClient, AmiOptions
from cti.errors import AmiAuthError, AmiDisconnected, AmiTimeout
from cti.sandbox.instance import InstanceState, free_port
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.asterisk


def cti_options(st: InstanceState, port: int | None = None, **kw: float) -> AmiOptions:
    return AmiOptions(st.ami_host, port or st.ami_port, st.ami_user, st.ami_secret, **kw)  # type: ignore[arg-type]


async def next_event(
    client: AmiClient, kind: type[ev.AmiEvent], timeout: float = 15, **match: str
) -> ev.AmiEvent:
    deadline = time.monotonic() + timeout
    while True:
        e = await asyncio.wait_for(client.events.get(), max(0.01, deadline - time.monotonic()))
        if isinstance(e, kind) and all(getattr(e, k) == v for k, v in match.items()):
            return e


async def originate(
    sim: AmiClient, uid: str, name: str, number: str = "13800138000", patience: int = 3
) -> None:
    await sim.request(
        "Originate",
        {
            "Channel": f"Local/{patience}*0*n@sim-caller",
            "Context": "from-pstn",
            "Exten": "8000",
            "Priority": "1",
            "Async": "true",
            "ChannelId": uid,
            "OtherChannelId": f"{uid}-c",
            "CallerID": f'"{name}" <{number}>',
        },
    )


async def test_wrong_secret_stops_start_up(sandbox_state: InstanceState) -> None:
    st = sandbox_state
    client = AmiClient(AmiOptions(st.ami_host, st.ami_port, st.ami_user, "not-the-secret"))
    with pytest.raises(AmiAuthError, match="refused AMI user 'cti'"):
        await client.start()


def test_cti_serve_with_a_wrong_secret_exits_with_a_clear_message(
    sandbox_state: InstanceState, tmp_path
) -> None:
    st = sandbox_state
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "CTI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}",
        "CTI_AMI_HOST": st.ami_host,
        "CTI_AMI_PORT": str(st.ami_port),
        "CTI_AMI_USER": "cti",
        "CTI_AMI_SECRET": "wrong",
        "CTI_HTTP_PORT": str(free_port()),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "cti", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 2
    assert "refused AMI user 'cti'" in proc.stderr


async def test_refused_connection_is_retried(sandbox_state: InstanceState) -> None:
    port = free_port()  # nothing listens here yet: connections are refused
    client = AmiClient(cti_options(sandbox_state, port, backoff_initial=0.1, backoff_max=0.5))
    await client.start()  # returns after the first refused attempt; retries in the background
    try:
        assert not client.connected
        assert (
            "ConnectionRefused" in client.stats.last_error
            or "refused" in client.stats.last_error.lower()
        )
        proxy = await TcpProxy(sandbox_state.ami_port).start(port)
        try:
            await client.wait_connected(10)
            up = await next_event(client, ev.LinkUp)
            assert isinstance(up, ev.LinkUp)
        finally:
            await proxy.stop()
    finally:
        await client.close()


async def test_watchdog_notices_a_half_open_link(sandbox_state: InstanceState) -> None:
    proxy = await TcpProxy(sandbox_state.ami_port).start()
    client = AmiClient(cti_options(sandbox_state, proxy.port, ping_interval=0.5, ping_timeout=1.0))
    await client.start()
    try:
        await next_event(client, ev.LinkUp)
        proxy.stall()  # bytes stop, sockets stay open: no RST, no FIN
        started = time.monotonic()
        down = await next_event(client, ev.LinkDown, timeout=10)
        assert (isinstance(down, ev.LinkDown) and "Ping" in down.reason) or "ping" in down.reason
        assert time.monotonic() - started < 5
        proxy.stall(False)
        up = await next_event(client, ev.LinkUp, timeout=20)
        assert isinstance(up, ev.LinkUp) and up.reconnect
    finally:
        await client.close()
        await proxy.stop()


async def test_actions_time_out_and_are_not_replayed(sandbox_state: InstanceState) -> None:
    proxy = await TcpProxy(sandbox_state.ami_port).start()
    client = AmiClient(cti_options(sandbox_state, proxy.port, ping_interval=30))
    await client.start()
    try:
        proxy.stall()
        with pytest.raises(AmiTimeout):
            await client.action("Ping", timeout=0.5)
        pending = asyncio.create_task(client.action("CoreShowChannels", as_list=True, timeout=20))
        await asyncio.sleep(0.2)
        proxy.cut()
        with pytest.raises(AmiDisconnected):
            await pending
        proxy.stall(False)
        with pytest.raises(AmiDisconnected):
            await client.action("Ping")  # not connected: refused at once, never queued
    finally:
        await client.close()
        await proxy.stop()


async def test_queue_add_resolves(sim_client: AmiClient) -> None:
    resp = await sim_client.action(
        "QueueAdd",
        Queue="helpdesk",
        Interface="Local/1099@sim-agent/n",
        MemberName="1099",
        timeout=5,
    )
    assert resp["Message"] == "Added interface to queue"
    await sim_client.action("QueueRemove", Queue="helpdesk", Interface="Local/1099@sim-agent/n")


async def test_bare_panoramisk_queue_add_never_resolves(sandbox_state: InstanceState) -> None:
    st = sandbox_state
    manager = Manager(
        host=st.ami_host, port=st.ami_port, username=st.sim_user, secret=st.sim_secret
    )
    await manager.connect()
    try:
        await asyncio.wait_for(manager.authenticated_future, 5)
        future = manager.send_action(
            {"Action": "QueueAdd", "Queue": "helpdesk", "Interface": "Local/1098@sim-agent/n"}
        )
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(future), 2)
        manager.send_action(
            {"Action": "QueueRemove", "Queue": "helpdesk", "Interface": "Local/1098@sim-agent/n"}
        )
        await asyncio.sleep(0.2)
    finally:
        manager.close()


async def test_originate_without_async_keeps_the_connection(sim_client: AmiClient) -> None:
    resp = await sim_client.request(
        "Originate",
        {
            "Channel": "Local/1*0*n@sim-caller",
            "Context": "sim-caller",
            "Exten": "1*0*n",
            "Priority": "1",
        },
        timeout=15,
    )
    assert resp["Response"] == "Success"
    assert (await sim_client.action("Ping"))["Ping"] == "Pong"
    assert sim_client.stats.logins == 1


async def test_utf8_split_across_reads_arrives_intact(
    sandbox_state: InstanceState, sim_client: AmiClient
) -> None:
    proxy = await TcpProxy(sandbox_state.ami_port, split_utf8=True).start()
    client = AmiClient(cti_options(sandbox_state, proxy.port))
    await client.start()
    try:
        await next_event(client, ev.LinkUp)
        await originate(sim_client, "utf8-1", "张三")
        inbound = await next_event(client, ev.Newexten, uniqueid="utf8-1", context="cti-inbound")
        assert isinstance(inbound, ev.Newexten)
        assert inbound.caller_name == "张三"
        assert proxy.splits > 0, "the proxy really split multibyte characters"
    finally:
        await client.close()
        await proxy.stop()


async def test_bare_panoramisk_loses_split_characters(
    sandbox_state: InstanceState, sim_client: AmiClient
) -> None:
    proxy = await TcpProxy(sandbox_state.ami_port, split_utf8=True).start()
    st = sandbox_state
    names: list[str] = []
    manager = Manager(
        host="127.0.0.1",
        port=proxy.port,
        username=st.ami_user,
        secret=st.ami_secret,
        protocol_factory=AMIProtocol,
    )
    manager.register_event(
        "Newexten",
        lambda m, e: names.append(e["CallerIDName"]) if e["Uniqueid"] == "utf8-2" else None,
    )
    await manager.connect()
    try:
        await asyncio.wait_for(manager.authenticated_future, 5)
        await originate(sim_client, "utf8-2", "张三")
        for _ in range(100):
            if names:
                break
            await asyncio.sleep(0.05)
        assert names and names[0] != "张三"
    finally:
        manager.close()
        await proxy.stop()


async def test_garbled_frames_are_skipped(sandbox_state: InstanceState) -> None:
    proxy = await TcpProxy(sandbox_state.ami_port).start()
    client = AmiClient(cti_options(sandbox_state, proxy.port))
    await client.start()
    try:
        await next_event(client, ev.LinkUp)
        proxy.inject(b"no headers at all\r\n\r\n")
        proxy.inject(b"Event: Hangup\r\nPrivilege: call,all\r\n\r\n")  # required headers missing
        proxy.inject(
            b"Event: Newexten\r\nPriority: one\r\nChannel: x\r\nUniqueid: 1\r\n"
            b"Linkedid: 1\r\nContext: c\r\nExten: s\r\n\r\n"
        )
        proxy.inject(b"Event: \xff\xfe\xfd\r\n\r\n")
        await asyncio.sleep(0.3)
        assert (await client.action("Ping"))["Ping"] == "Pong"
        assert client.connected and client.stats.logins == 1
        assert client.stats.garbled >= 2
    finally:
        await client.close()
        await proxy.stop()


async def test_failing_listener_does_not_drop_the_link(
    sandbox_state: InstanceState, sim_client: AmiClient, tmp_path
) -> None:
    from cti.db import create_engine, migrate, session_maker
    from cti.live.bus import CallEvent
    from cti.runtime import CtiCore
    from desk.migrations import MIGRATIONS
    from tests.conftest import server_settings

    settings = server_settings(sandbox_state, tmp_path)
    engine = create_engine(settings.effective_database_url)
    await migrate(engine, MIGRATIONS)
    core = CtiCore(settings, session_maker(engine))

    def boom(_event: object) -> None:
        raise RuntimeError("a broken subscriber")

    core.bus.subscribe(CallEvent, boom)
    await core.start()
    try:
        await originate(sim_client, "boom-1", "Listener", patience=1)
        for _ in range(100):
            if core.tracker.calls.get("boom-1") or core.events_handled > 20:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(2)
        assert core.client.connected and core.client.stats.logins == 1
        assert (await core.client.action("Ping"))["Ping"] == "Pong"
    finally:
        await core.stop()
        await engine.dispose()
