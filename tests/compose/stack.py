"""docker-compose.yml started for real with podman and podman-compose (tests/compose).

This machine kind has no Docker daemon; Debian's podman runs containers with runc and explicit
ulimits (crun fails on its cgroup setup), which a containers.conf of our own sets for every podman
command we run (CONTAINERS_CONF), without touching the machine's configuration.

The images are built from the repository's Dockerfiles on a Debian sid base: the public
debian:sid-slim where a registry answers, else one imported from a debootstrap root, cached in
CTI_CACHE_DIR/compose (~/.cache/cti/compose) so a second run (CI's next one on the same machine)
builds nothing it built before. The images are tagged with a hash of everything they are built
from, so an unchanged tree reuses them as they are and a changed one rebuilds only the layers
that changed (podman's layer cache). PostgreSQL: the public postgres:16, or where no registry
answers a stand-in from Debian's package with the same interface (tests/compose/postgres.Dockerfile).
"""

import hashlib
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from cti.sandbox import cache_dir

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
MIRROR = "http://deb.debian.org/debian"
PUBLIC_BASE = "docker.io/library/debian:sid-slim"
PUBLIC_POSTGRES = "docker.io/library/postgres:16"
# Changing the recipe of the local base image (or this version) makes a new one.
BASE_RECIPE = {"tool": "debootstrap", "variant": "minbase", "suite": "sid", "version": 1}
CONTAINERS_CONF = """\
# Written by tests/compose/stack.py: podman on this machine kind needs runc and explicit ulimits.
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
"""
# What the images are built from: a change in any of these makes a new image tag.
BUILD_INPUTS = ("docker", "asterisk-conf", "cti", "desk", "reports", "pyproject.toml",
                "README.md", "docker-compose.yml", ".dockerignore")  # fmt: skip


def compose_cache() -> Path:
    """Where the base image's root tarball and the podman configuration are kept."""
    path = cache_dir() / "compose"
    path.mkdir(parents=True, exist_ok=True)
    return path


def podman_env() -> dict[str, str]:
    """The environment every podman and podman-compose command of the tests runs with."""
    conf = compose_cache() / "containers.conf"
    if not conf.exists() or conf.read_text() != CONTAINERS_CONF:
        conf.write_text(CONTAINERS_CONF)
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(
    *args: str, timeout: float = 600, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run `podman ARGS` and return what it printed."""
    proc = subprocess.run(["podman", *args], env=podman_env(), capture_output=True, text=True,
                          timeout=timeout, check=False)  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")  # fmt: skip
    return proc


def image_exists(name: str) -> bool:
    """True when podman has the image `name`."""
    return podman("image", "exists", name, check=False).returncode == 0


def tree_hash() -> str:
    """A hash of every file the images are built from (BUILD_INPUTS)."""
    h = hashlib.sha256()
    for item in BUILD_INPUTS:
        path = REPO / item
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for f in files:
            rel = f.relative_to(REPO).as_posix()
            if "__pycache__" in rel or "node_modules" in rel or f.suffix == ".pyc":
                continue
            h.update(rel.encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def postgres_tag(base: str) -> str:
    """The tag of the PostgreSQL stand-in: its own files and the base it is built on."""
    h = hashlib.sha256(base.encode())
    for name in ("postgres.Dockerfile", "postgres-entrypoint.sh"):
        h.update((HERE / name).read_bytes())
    return "test-pg-" + h.hexdigest()[:16]


@dataclass
class BaseImages:
    """The images the compose file is built on and run with."""

    base: str
    postgres: str
    local: bool  # made here from debootstrap (no registry answered)
    made: list[str] = field(default_factory=list)  # what this call had to make, for the report


def _try_pull(name: str) -> bool:
    try:
        return podman("pull", "-q", name, timeout=90, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


def ensure_base_images() -> BaseImages:
    """The Debian sid base image (and PostgreSQL's): cached local ones first, then the public
    ones, then a base imported from a debootstrap root (kept as a tarball in the cache)."""
    key = hashlib.sha256(json.dumps(BASE_RECIPE, sort_keys=True).encode()).hexdigest()[:12]
    local = f"localhost/cti-base:sid-{key}"
    tarball = compose_cache() / f"base-sid-{key}.tar"
    made: list[str] = []
    if not image_exists(local) and not tarball.exists():
        if _try_pull(PUBLIC_BASE) and _try_pull(PUBLIC_POSTGRES):
            return BaseImages(PUBLIC_BASE, PUBLIC_POSTGRES, local=False)
        root = compose_cache() / f"base-sid-{key}.root"
        shutil.rmtree(root, ignore_errors=True)
        if shutil.which("debootstrap") is None:
            raise AssertionError("debootstrap is missing: scripts/env.sh installs it")
        subprocess.run(["debootstrap", "--variant=minbase", "sid", str(root), MIRROR],
                       check=True, capture_output=True, timeout=1200)  # fmt: skip
        partial = tarball.with_suffix(".partial")
        subprocess.run(["tar", "-C", str(root), "-cf", str(partial), "."], check=True, timeout=600)
        partial.replace(tarball)
        shutil.rmtree(root, ignore_errors=True)
        made.append("debootstrap base")
    if not image_exists(local):
        podman("import", str(tarball), local)
        made.append("base image import")
    return BaseImages(local, "", local=True, made=made)


def free_udp_range(count: int) -> int:
    """The first of `count` consecutive UDP ports on 127.0.0.1 that nobody has bound."""
    for start in range(21000, 60000 - count, count + 7):
        socks: list[socket.socket] = []
        try:
            for port in range(start, start + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return start
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise AssertionError(f"no {count} consecutive free UDP ports")


def free_subnet() -> str:
    """A /24 in 172.31.0.0/16 (inside the 172.16.0.0/12 the AMI user admits) that no podman
    network uses."""
    names = podman("network", "ls", "--format", "{{.Name}}").stdout.split()
    text = podman("network", "inspect", *names).stdout if names else ""
    for n in range(200):
        subnet = f"172.31.{(os.getpid() + n) % 200 + 20}.0/24"
        if subnet not in text:
            return subnet
    raise AssertionError("no free subnet for the compose network")


@dataclass
class Stack:
    """One compose project: `podman-compose -p NAME -f docker-compose.yml -f override.yml`."""

    project: str
    folder: Path
    env: dict[str, str]
    files: list[Path]

    def compose(self, *args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
        """Run podman-compose with this project's files and settings."""
        cmd = ["podman-compose", "-p", self.project]
        for f in self.files:
            cmd += ["-f", str(f)]
        proc = subprocess.run([*cmd, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout, cwd=REPO, check=False)  # fmt: skip
        log = self.folder / "compose.log"
        with log.open("a") as fh:
            fh.write(f"$ {' '.join(cmd + list(args))}\n{proc.stdout}\n{proc.stderr}\n")
        if proc.returncode != 0:
            raise AssertionError(f"podman-compose {' '.join(args)} failed ({proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-4000:]}")  # fmt: skip
        return proc

    def container(self, service: str) -> str:
        """The container of `service` (podman-compose names them project_service_1)."""
        return f"{self.project}_{service}_1"

    def exec(self, service: str, *cmd: str, check: bool = True) -> str:
        """Run a command in the service's container; its standard output."""
        return podman("exec", self.container(service), *cmd, check=check, timeout=120).stdout

    def logs(self, service: str) -> str:
        """The container's output so far."""
        proc = podman("logs", self.container(service), check=False)
        return proc.stdout + proc.stderr

    def psql(self, sql: str) -> list[list[str]]:
        """Rows of a query in the composed PostgreSQL (fields split on |)."""
        out = self.exec("postgres", "psql", "-U", "cti", "-d", "cti", "-At", "-F", "|", "-c", sql)
        return [line.split("|") for line in out.splitlines() if line]

    def healthy(self, service: str) -> tuple[bool, str]:
        """Run the service's health check once (podman has no timer for it without systemd)."""
        proc = podman("healthcheck", "run", self.container(service), check=False, timeout=60)
        return proc.returncode == 0, proc.stdout + proc.stderr

    def wait_healthy(self, services: tuple[str, ...], timeout: float) -> None:
        """Wait until every service's health check passes."""
        deadline = time.monotonic() + timeout
        pending = list(services)
        last = ""
        while pending:
            ok, last = self.healthy(pending[0])
            if ok:
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                states = podman("ps", "-a", "--filter", f"label=io.podman.compose.project={self.project}",
                                "--format", "{{.Names}} {{.Status}}", check=False).stdout  # fmt: skip
                raise AssertionError(
                    f"{pending[0]} is not healthy after {timeout:.0f} s: {last}\n{states}\n"
                    + "\n".join(f"--- {s}\n{self.logs(s)[-3000:]}" for s in pending)
                )
            time.sleep(2)


def clean_old_images(*keep: str) -> None:
    """Remove the test's images of other trees (their layers stay cached while shared)."""
    out = podman("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).stdout
    for name in out.split():
        repo, _, tag = name.rpartition(":")
        if repo.endswith(("cti-desk/cti", "cti-desk/asterisk", "cti-desk/test-postgres")) and (
            tag.startswith("test-") and tag not in keep
        ):
            podman("rmi", name, check=False)
