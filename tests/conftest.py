"""Shared fixtures: a real Asterisk sandbox for the session, the simulator, the CTI server."""

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from cti.ami.client import AmiClient, AmiOptions
from cti.errors import AmiActionFailed
from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState, free_port
from cti.settings import Settings, load_settings

# The queue timeout of the test sandbox: short, so tests see timed-out calls quickly.
QUEUE_TIMEOUT = 15


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Instance]:
    """A real Asterisk 22 of our own, on free ports, for the whole test session."""
    inst = Instance(f"test{os.getpid()}")
    inst.purge()
    inst.up(
        ami_port=free_port(),
        sip_port=free_port(),
        agi_port=free_port(),
        globals_={"CTI_QUEUE_TIMEOUT": str(QUEUE_TIMEOUT)},
    )
    yield inst
    inst.purge()


@pytest.fixture
def sandbox_state(sandbox: Instance) -> InstanceState:
    """The running sandbox's ports and credentials (restarting it if a test stopped it)."""
    if not sandbox.is_running():
        sandbox.restart()
    st = sandbox.load()
    assert st is not None
    return st


async def _idle_queue(client: AmiClient, queue: str = "helpdesk") -> None:
    """Log every member out and wait until no call is up, so tests do not see each other."""
    for _ in range(600):
        chans = await client.action("CoreShowChannels", as_list=True)
        if not any(m.get("Event") == "CoreShowChannel" for m in chans):
            break
        await asyncio.sleep(0.1)
    status = await client.action("QueueStatus", as_list=True, Queue=queue)
    for m in status:
        if m.get("Event") == "QueueMember":
            with contextlib.suppress(AmiActionFailed):
                await client.action("QueueRemove", Queue=queue, Interface=m["Location"])


@pytest.fixture
async def sim_client(sandbox_state: InstanceState) -> AsyncIterator[AmiClient]:
    """The simulator's AMI client, with an idle, memberless help-desk queue."""
    st = sandbox_state
    client = AmiClient(AmiOptions(st.ami_host, st.ami_port, st.sim_user, st.sim_secret))
    await client.start()
    await client.wait_connected(30)
    await _idle_queue(client)
    yield client
    await client.close()


def server_settings(
    st: InstanceState, tmp_path: Path, *, ami_port: int | None = None, **extra: str
) -> Settings:
    """Settings for a CTI server on this sandbox with its own SQLite file."""
    env = {
        "CTI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cti.sqlite3'}",
        "CTI_AMI_HOST": st.ami_host,
        "CTI_AMI_PORT": str(ami_port or st.ami_port),
        "CTI_AMI_USER": st.ami_user,
        "CTI_AMI_SECRET": st.ami_secret,
        "CTI_QUEUE_LOG_PATH": st.queue_log,
        "CTI_AGI_PORT": str(st.agi_port),
        "CTI_MEDIA_DIR": st.media_dir,
        "CTI_ASTERISK_MEDIA_DIR": st.asterisk_media_dir,
        "CTI_TTS_ROOT": st.root,
        # The desk is open whatever the time of day the tests run.
        "CTI_CONFIG_DIR": str(Path(__file__).parent / "fixtures" / "config" / "open"),
        "CTI_AGENT_INTERFACE": "Local/{ext}@sim-agent/n",
        # Wrap-up pauses an agent after each call; tests that do not study it keep it short.
        "CTI_WRAPUP_SECONDS": "1",
        "CTI_AMI_PING_INTERVAL": "1",
        "CTI_AMI_PING_TIMEOUT": "2",
        **extra,
    }
    return load_settings(None, env)
