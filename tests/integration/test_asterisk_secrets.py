"""`cti serve` refuses an Asterisk that still runs on the placeholder secrets asterisk-conf ships,
as anyone who has read the repository could use them; the sandbox makes its own."""

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cti.ami import actions
from cti.ami.client import AmiClient
from cti.confedit import options, replace_options
from cti.sandbox import Instance
from cti.sandbox.instance import REPO_CONF, InstanceState, free_port
from cti.sitesecrets import is_placeholder

pytestmark = pytest.mark.asterisk


@pytest.fixture(scope="module")
def as_shipped() -> Iterator[InstanceState]:
    """An Asterisk of its own configured as a site that deployed asterisk-conf/ as it is: the
    [cti] AMI secret and every PJSIP password are the shipped placeholders."""
    inst = Instance(f"shipped{os.getpid()}")
    inst.purge()
    st = inst.up(ami_port=free_port(), sip_port=free_port(), agi_port=free_port())
    etc = Path(st.config_dir)
    for fname, key in (("manager.conf", "secret"), ("pjsip.conf", "password")):
        shipped = dict(options((REPO_CONF / fname).read_text(), key))
        path = etc / fname
        path.write_text(replace_options(path.read_text(), key, lambda s, _, m=shipped: m.get(s)))
    inst.cli("manager reload")
    inst.cli("module reload res_pjsip.so")
    yield st
    inst.purge()


def serve(st: InstanceState, tmp_path: Path, user: str, secret: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CTI_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'cti.sqlite3'}",
           "CTI_DATA_DIR": str(tmp_path), "CTI_HTTP_PORT": str(free_port()),
           "CTI_AMI_HOST": st.ami_host, "CTI_AMI_PORT": str(st.ami_port), "CTI_AMI_USER": user,
           "CTI_AMI_SECRET": secret, "CTI_AGI_PORT": str(free_port()), "CTI_IVR_ENABLED": "0",
           "CTI_REPORT_SCHEDULE": "0", "CTI_MEDIA_DIR": str(tmp_path / "media")}  # fmt: skip
    return subprocess.Popen([sys.executable, "-m", "cti", "serve"], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip


def refusal(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    """The server's message, once it has exited with 2; fails if it serves instead."""
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.communicate(timeout=30)
        raise AssertionError("the server started against the placeholder secrets") from None
    assert proc.returncode == 2, err
    return err


def test_serve_refuses_the_placeholder_ami_secret(
    as_shipped: InstanceState, tmp_path: Path
) -> None:
    # Asterisk takes it (it is what its manager.conf says); the server must not.
    err = refusal(serve(as_shipped, tmp_path, "cti", "change-me-on-every-site"))
    assert "CTI_AMI_SECRET" in err and "placeholder" in err


def test_serve_refuses_an_asterisk_whose_phones_have_the_placeholder_passwords(
    as_shipped: InstanceState, tmp_path: Path
) -> None:
    """Checked over AMI (PJSIPShowAuths) where the AMI user may list the auths: here the
    sandbox's simulator user, which has write=system (our [cti] user deliberately has not)."""
    err = refusal(serve(as_shipped, tmp_path, as_shipped.sim_user, as_shipped.sim_secret))
    assert "1001, 1002, carrier" in err and "placeholder" in err
    assert "change-me-1001" not in err  # names the auths, never their passwords


async def test_the_sandbox_makes_its_own_sip_passwords(sim_client: AmiClient) -> None:
    auths = await actions.pjsip_auths(sim_client)
    assert {a.name for a in auths} >= {"1001", "1002", "carrier"}
    assert not [a.name for a in auths if is_placeholder(a.password)]
