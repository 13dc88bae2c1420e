"""Build (once) and find the Debian sid root that Asterisk 22 runs in.

Debian 12 has no Asterisk package and sid's needs a newer libc, so Asterisk runs chrooted in a sid
root file system kept outside the repository (a fresh clone on the same machine reuses it).
"""

import fcntl
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cti.errors import SandboxError

logger = logging.getLogger(__name__)

MIRROR = "http://deb.debian.org/debian"
SUITE = "sid"
# Changing this list (or RECIPE_VERSION) rebuilds the root on every machine at its next use.
PACKAGES = (
    "asterisk",
    "asterisk-modules",
    "asterisk-core-sounds-en-gsm",
    "asterisk-moh-opsound-gsm",
    "espeak-ng",
    "sox",
    "libsox-fmt-all",
)
RECIPE_VERSION = 1
_APT_OPTS = ("-o", "Acquire::Check-Valid-Until=false")


def cache_dir() -> Path:
    """Where the sandbox root and instances live: CTI_CACHE_DIR or ~/.cache/cti."""
    env = os.environ.get("CTI_CACHE_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "cti"


def _recipe() -> str:
    return json.dumps({"suite": SUITE, "packages": PACKAGES, "version": RECIPE_VERSION})


def root_is_ready(root: Path) -> bool:
    """True when `root` was built from the current recipe."""
    stamp = root / ".cti-root"
    return (
        stamp.exists() and stamp.read_text() == _recipe() and (root / "usr/sbin/asterisk").exists()
    )


@contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def chroot_prefix(root: Path) -> list[str]:
    """The command prefix that runs a program inside `root` (rootless through a user namespace)."""
    if os.geteuid() == 0:
        return ["chroot", str(root)]
    return ["unshare", "--map-root-user", "chroot", str(root)]


def _run(cmd: list[str], what: str) -> None:
    logger.info("sandbox: %s", what)
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = (proc.stdout + proc.stderr)[-2000:]
        raise SandboxError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")


def _build(target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    if os.geteuid() == 0:
        if not shutil.which("debootstrap"):
            raise SandboxError(
                "debootstrap is missing: run scripts/env.sh (or apt-get install debootstrap)"
            )
        _run(
            ["debootstrap", "--variant=minbase", SUITE, str(target), MIRROR],
            f"debootstrap {SUITE} into {target}",
        )
        # The mirror we are given may serve a sid Release file past its Valid-Until date.
        apt = ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", *_APT_OPTS]
        _run([*chroot_prefix(target), *apt, "update", "-q"], "apt-get update in the root")
        install = [*apt, "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
        _run(
            [*chroot_prefix(target), *install],
            "install Asterisk into the root",
        )
        _run([*chroot_prefix(target), "apt-get", "clean"], "apt-get clean")
    else:
        if not shutil.which("mmdebstrap"):
            raise SandboxError(
                "mmdebstrap is missing: run scripts/env.sh (or apt-get install mmdebstrap)"
            )
        _run(
            [
                "mmdebstrap",
                "--mode=unshare",
                "--variant=minbase",
                f"--include={','.join(PACKAGES)}",
                "--aptopt=Acquire::Check-Valid-Until false",
                SUITE,
                str(target),
                MIRROR,
            ],
            f"mmdebstrap {SUITE} into {target}",
        )
    (target / "var/cti").mkdir(parents=True, exist_ok=True)
    (target / ".cti-root").write_text(_recipe())


def ensure_root(cache: Path | None = None) -> Path:
    """Return the sandbox root, building it first if it is missing or stale (about a minute)."""
    cache = cache or cache_dir()
    root = cache / "asterisk-root"
    if root_is_ready(root):
        return root
    with _lock(cache / "asterisk-root.lock"):
        if root_is_ready(root):
            return root
        build = cache / "asterisk-root.build"
        _build(build)
        if root.exists():
            shutil.rmtree(root)
        build.rename(root)
    return root


def ensure_prompts(root: Path) -> int:
    """Synthesise the IVR's prompt catalogue into the root's sound folders (once per catalogue)."""
    from cti.ivr.config import load_ivr_config
    from cti.ivr.prompts import Synthesizer, build_catalogue

    config_dir = os.environ.get("CTI_CONFIG_DIR")
    catalogue = load_ivr_config(Path(config_dir) if config_dir else None).prompts
    sounds = root / "usr/share/asterisk/sounds"
    with _lock(root.parent / "asterisk-prompts.lock"):
        recorded = Path(config_dir) / "prompts" if config_dir else None
        return build_catalogue(catalogue, sounds, Synthesizer(root, chroot_prefix(root)), recorded)
