"""The test sandbox plays short stand-ins of the IVR prompts, and the real recordings to a test
marked `real_prompts` (cti/sandbox/sounds.py): what Asterisk opens for a prompt, followed link
by link inside the root as Asterisk sees it, is the one or the other."""

import os
import wave
from pathlib import Path

import pytest

from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState

pytestmark = pytest.mark.asterisk


def in_root(root: Path, path: str) -> Path:
    """Where `path`, as a process chrooted in `root` sees it with every link followed, is on
    this host (the root's own links are absolute inside it: sounds/en -> /etc/alternatives/...)."""
    parts = list(Path(path).relative_to("/").parts)
    done = Path("/")
    for _ in range(1000):
        if not parts:
            return root / str(done).lstrip("/")
        part = parts.pop(0)
        if part == "..":
            done = done.parent
            continue
        host = root / str(done / part).lstrip("/")
        if host.is_symlink():
            target = os.readlink(host)
            if target.startswith("/"):
                done = Path("/")
            parts = list(Path(target.lstrip("/")).parts) + parts
        else:
            done = done / part
    raise AssertionError(f"{path}: links without end")


def seconds_played(inst: Instance, sound: str) -> float:
    """The length of the file Asterisk plays for `sound` (e.g. zh/cti/welcome) on `inst`."""
    with wave.open(str(in_root(inst.root, f"{inst.sounds.data_inner}/sounds/{sound}.wav"))) as w:
        return w.getnframes() / w.getframerate()


def test_tests_hear_short_stand_ins(sandbox: Instance, sandbox_state: InstanceState) -> None:
    assert sandbox.sounds.in_use() == "short"
    assert seconds_played(sandbox, "zh/cti/main_menu") == pytest.approx(1.2)
    assert seconds_played(sandbox, "zh/digits/7") == pytest.approx(0.2)


@pytest.mark.real_prompts
def test_a_test_that_listens_hears_the_real_prompts(
    sandbox: Instance, sandbox_state: InstanceState
) -> None:
    assert sandbox.sounds.in_use() == "full"
    assert seconds_played(sandbox, "zh/cti/main_menu") > 5
    assert seconds_played(sandbox, "en/cti/main_menu") > 5
    assert seconds_played(sandbox, "zh/digits/7") > 0.3
