"""One running Asterisk in the sandbox root: its ports, rendered configuration and process."""

import contextlib
import fcntl
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cti.confedit import options, replace_options, set_option
from cti.errors import SandboxError
from cti.sandbox.root import cache_dir, chroot_prefix, ensure_prompts, ensure_root
from cti.sandbox.sounds import SoundFolder
from cti.sandbox.webrtc import render_webrtc
from cti.sitesecrets import write_site_secrets

logger = logging.getLogger(__name__)

REPO_CONF = Path(__file__).resolve().parents[2] / "asterisk-conf"
INSTANCES = "var/cti"
# Ports the default instance prefers; any instance falls back to free ports.
DEFAULT_PORTS = {
    "ami_port": 5038,
    "sip_port": 5060,
    "agi_port": 4573,
    "http_port": 8088,
    "wss_port": 8089,
}
# The carrier's placeholder address in asterisk-conf/pjsip.conf (TEST-NET-1). A sandbox never
# keeps it: no SIP packet may leave 127.0.0.0/8, so the trunk points at a loopback address
# where a test's SIPp (or nobody) listens.
CARRIER_PLACEHOLDER = "192.0.2.10"
CARRIER_HOST = "127.0.0.2"


def default_instance_name() -> str:
    """The instance the demo and `cti serve` use when nothing else is configured."""
    return os.environ.get("CTI_SANDBOX", "default")


# Ports free_port() handed out lately, shared by every process on this host: parallel test
# workers each start an Asterisk, servers and proxies on "free" ports, and a port the kernel has
# just given one of them is free again until that one binds it.
HANDED_OUT = Path(tempfile.gettempdir()) / "cti-free-ports"
HANDED_OUT_FOR = 600.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now and that no process on this
    host was handed by free_port() in the last ten minutes."""
    with HANDED_OUT.open("a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        now = time.time()
        recent: dict[int, float] = {}
        for line in fh.read().split("\n"):
            number, _, at = line.partition(" ")
            with contextlib.suppress(ValueError):
                if now - float(at) < HANDED_OUT_FOR:
                    recent[int(number)] = float(at)
        for _ in range(100):
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = int(s.getsockname()[1])
            if port not in recent:
                break
        recent[port] = now
        fh.seek(0)
        fh.truncate()
        fh.write("".join(f"{p} {at}\n" for p, at in recent.items()))
        return port


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on `host` that nobody has bound right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class InstanceState:
    """What `cti sandbox status --json` prints and what clients need to reach the instance."""

    name: str
    ami_host: str
    ami_port: int
    ami_user: str
    ami_secret: str
    sim_user: str
    sim_secret: str
    sip_port: int
    agi_host: str
    agi_port: int
    config_dir: str
    queue_log: str
    log_dir: str
    root: str
    pid: int | None = None
    globals: dict[str, str] | None = None
    media_dir: str = ""
    asterisk_media_dir: str = ""
    agi_secret: str = ""
    # The softphones' WebSocket (wss://127.0.0.1:wss_port/ws), the CA its certificate is signed
    # by, and the key their passwords are derived from (cti/softphone.py).
    http_port: int = 0
    wss_port: int = 0
    ca_cert: str = ""
    softphone_key: str = ""
    # "full": the synthesised prompts; "short": short stand-ins (cti/sandbox/sounds.py).
    prompts: str = "full"
    # The carrier trunk of the sandbox: SIP from this address is the carrier (identify match),
    # and calls out through the trunk go to sip:carrier_host:carrier_port (SIPp as the UAS).
    carrier_host: str = CARRIER_HOST
    carrier_port: int = 5070
    # Where Asterisk writes its CDRs (cdr_pgsql), as postgresql://user[:password]@host:port/db;
    # empty: no CDRs, as asterisk-conf ships.
    cdr_database: str = ""


class Instance:
    """An Asterisk instance named `name` inside the sandbox root."""

    def __init__(self, name: str, cache: Path | None = None) -> None:
        if not name.replace("-", "").replace("_", "").isalnum():
            raise SandboxError(f"bad sandbox name {name!r}: letters, digits, - and _ only")
        self.name = name
        self.cache = cache or cache_dir()
        self.root = self.cache / "asterisk-root"
        self.inner = Path("/") / INSTANCES / name
        self.dir = self.root / INSTANCES / name
        self.state_file = self.dir / "state.json"
        self.sounds = SoundFolder(self.root, self.dir, self.inner)

    # -- state -------------------------------------------------------------------------------

    def load(self) -> InstanceState | None:
        """The saved state of this instance, or None if it was never set up."""
        try:
            return InstanceState(**json.loads(self.state_file.read_text()))
        except FileNotFoundError:
            return None

    def _save(self, st: InstanceState) -> None:
        self.state_file.write_text(json.dumps(asdict(st), indent=2))

    def is_running(self) -> bool:
        """True when the instance's Asterisk process is alive."""
        st = self.load()
        if st is None or st.pid is None:
            return False
        try:
            os.kill(st.pid, 0)
        except ProcessLookupError:
            return False
        # A zombie or a recycled pid is not our Asterisk.
        try:
            cmdline = Path(f"/proc/{st.pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"asterisk" in cmdline and str(self.inner).encode() in cmdline

    def status(self) -> dict[str, object]:
        """State plus liveness, as a JSON-able dict."""
        st = self.load()
        out: dict[str, object] = {"name": self.name, "running": self.is_running()}
        if st is not None:
            out.update(asdict(st))
        return out

    # -- lifecycle ---------------------------------------------------------------------------

    def up(
        self,
        *,
        ami_port: int | None = None,
        sip_port: int | None = None,
        agi_port: int | None = None,
        globals_: dict[str, str] | None = None,
        prompts: str | None = None,
        cdr_database: str | None = None,
        timeout: float = 90.0,
    ) -> InstanceState:
        """Start the instance (building the root first if needed); a running one is left alone.

        `prompts="short"` gives it short stand-ins of the IVR prompts (tests that do not listen
        to them), which `use_prompts` turns into the real ones and back while it runs.
        `cdr_database` (postgresql://user[:password]@host:port/db) has it write its CDRs there
        through cdr_pgsql, into a table `cdr` made as the README says."""
        ensure_root(self.cache)
        ensure_prompts(self.root)
        if self.is_running():
            running = self.load()
            assert running is not None
            return running
        old = self.load()
        for attempt in (1, 2):
            st = self._plan(old, ami_port, sip_port, agi_port)
            st.globals = globals_ if globals_ is not None else (old.globals if old else None)
            st.prompts = prompts or (old.prompts if old else "full")
            if cdr_database is not None:
                st.cdr_database = cdr_database
            elif old is not None:
                st.cdr_database = old.cdr_database
            self._render(st, st.globals or {})
            st.pid = self._spawn()
            self._save(st)
            try:
                self._wait_booted(st, timeout)
                break
            except SandboxError as exc:
                # A start-up that really failed (not the exec race above) gets one more try.
                if attempt == 2 or "exited during start-up" not in str(exc):
                    raise
                logger.warning("sandbox %s: %s; starting it again", self.name, exc)
        logger.info("sandbox %s up: AMI 127.0.0.1:%s pid %s", self.name, st.ami_port, st.pid)
        return st

    def _plan(
        self, old: InstanceState | None, ami: int | None, sip: int | None, agi: int | None
    ) -> InstanceState:
        def pick(key: str, asked: int | None) -> int:
            if asked:
                return asked
            if old is not None:
                prev = int(getattr(old, key))
                if prev and _port_free(prev):
                    return prev
            if self.name == "default" and _port_free(DEFAULT_PORTS[key]):
                return DEFAULT_PORTS[key]
            return free_port()

        d = self.dir
        return InstanceState(
            name=self.name,
            ami_host="127.0.0.1",
            ami_port=pick("ami_port", ami),
            ami_user="cti",
            ami_secret=old.ami_secret if old else secrets.token_urlsafe(18),
            sim_user="sim",
            sim_secret=old.sim_secret if old else secrets.token_urlsafe(18),
            sip_port=pick("sip_port", sip),
            agi_host="127.0.0.1",
            agi_port=pick("agi_port", agi),
            config_dir=str(d / "etc"),
            queue_log=str(d / "log" / "queue_log"),
            log_dir=str(d / "log"),
            root=str(self.root),
            media_dir=str(d / "media"),
            asterisk_media_dir=f"{self.inner}/media",
            agi_secret=old.agi_secret if old and old.agi_secret else secrets.token_urlsafe(18),
            http_port=pick("http_port", None),
            wss_port=pick("wss_port", None),
            softphone_key=old.softphone_key
            if old and old.softphone_key
            else secrets.token_urlsafe(32),
            carrier_host=CARRIER_HOST,
            carrier_port=(
                old.carrier_port
                if old is not None
                else 5070
                if self.name == "default"
                else free_udp_port(CARRIER_HOST)
            ),
        )

    def _render(self, st: InstanceState, globals_: dict[str, str]) -> None:
        """Copy asterisk-conf/ into the instance and set only its site-specific options."""
        etc = self.dir / "etc"
        if etc.exists():
            shutil.rmtree(etc)
        shutil.copytree(REPO_CONF, etc)
        for sub in (
            "run",
            "log",
            "spool",
            "lib",
            "cache",
            "media/recordings",
            "media/announcements",
            "media/calls",
        ):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        inner = self.inner
        edits: dict[str, list[tuple[str, str, str]]] = {
            "asterisk.conf": [
                ("directories", "astetcdir", f"{inner}/etc"),
                ("directories", "astrundir", f"{inner}/run"),
                ("directories", "astlogdir", f"{inner}/log"),
                ("directories", "astspooldir", f"{inner}/spool"),
                ("directories", "astdbdir", f"{inner}/lib"),
                ("directories", "astcachedir", f"{inner}/cache"),
            ],
            "manager.conf": [
                ("general", "port", str(st.ami_port)),
                ("general", "bindaddr", "127.0.0.1"),
            ],
            "pjsip.conf": [("transport-udp", "bind", f"127.0.0.1:{st.sip_port}")],
            "extensions.conf": [
                ("globals", "CTI_AGI_HOST", st.agi_host),
                ("globals", "CTI_AGI_PORT", str(st.agi_port)),
                # The carrier of the sandbox: on-call mobiles are simulated Local channels.
                ("globals", "CTI_OUTBOUND_TECH", "Local"),
                ("globals", "CTI_OUTBOUND_SUFFIX", "@sim-mobile"),
                *(("globals", k, v) for k, v in globals_.items()),
            ],
            "sim/manager_sim.conf": [("sim", "secret", st.sim_secret)],
        }
        if st.prompts != "full":
            edits["asterisk.conf"].append(("directories", "astdatadir", self.sounds.data_inner))
            playing = self.sounds.in_use()  # a restart keeps what the instance played
            self.sounds.build()
            self.sounds.use(playing or st.prompts)
        for fname, changes in edits.items():
            path = etc / fname
            text = path.read_text()
            for section, key, value in changes:
                text = set_option(text, section, key, value)
            path.write_text(text)
        pjsip = etc / "pjsip.conf"
        pjsip.write_text(carrier_on_loopback(pjsip.read_text(), st.carrier_host, st.carrier_port))
        if st.cdr_database:
            cdr_into_postgres(etc, st.cdr_database)
        # Secrets of its own, made the way a site's are at deploy (the phones' are new each time).
        write_site_secrets(etc, ami_secret=st.ami_secret, agi_secret=st.agi_secret)
        ca = render_webrtc(
            etc, self.dir / "tls", f"{inner}/tls", st.http_port, st.wss_port, st.softphone_key
        )
        st.ca_cert = str(ca)
        # The sandbox adds the simulation on top of exactly what a site deploys.
        for fname, include in (
            ("extensions.conf", "sim/extensions_sim.conf"),
            ("manager.conf", "sim/manager_sim.conf"),
        ):
            with (etc / fname).open("a") as fh:
                fh.write(f'\n; --- sandbox only ---\n#include "{include}"\n')

    def use_prompts(self, kind: str) -> None:
        """Play the real prompts ("full") or the short stand-ins ("short") from now on, on an
        instance started with short prompts."""
        st = self.load()
        if st is None or st.prompts == "full":
            if kind == "full":
                return
            raise SandboxError(f"sandbox {self.name} plays the real prompts only")
        if self.sounds.in_use() != kind:
            self.sounds.use(kind)

    def sip_password(self, section: str) -> str:
        """The password of a PJSIP auth (`1001`, `carrier`) in the running configuration."""
        text = (self.dir / "etc" / "pjsip.conf").read_text()
        for name, value in options(text, "password"):
            if name == section:
                return value
        raise SandboxError(f"pjsip.conf has no auth [{section}]")

    def _asterisk(self, *args: str) -> list[str]:
        return [
            *chroot_prefix(self.root),
            "/usr/sbin/asterisk",
            "-C",
            f"{self.inner}/etc/asterisk.conf",
            *args,
        ]

    def _spawn(self) -> int:
        console = (self.dir / "log" / "console.log").open("ab")
        args = ["-f", "-n"]
        if os.geteuid() == 0:
            args += ["-U", "root"]
        proc = subprocess.Popen(
            self._asterisk(*args),
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        console.close()
        return proc.pid

    def cli(self, command: str, timeout: float = 30.0) -> str:
        """Run an Asterisk CLI command on the instance and return its output."""
        proc = subprocess.run(
            self._asterisk("-rx", command),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise SandboxError(f"asterisk -rx {command!r}: {proc.stderr or proc.stdout}")
        return proc.stdout

    def _still_running(self) -> bool:
        # /proc/<pid>/cmdline reads empty while chroot is exec'ing Asterisk: look twice.
        if self.is_running():
            return True
        time.sleep(0.5)
        return self.is_running()

    def _wait_booted(self, st: InstanceState, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if not self._still_running():
                console = Path(st.log_dir) / "console.log"
                tail = console.read_text(errors="replace")[-1500:] if console.exists() else ""
                raise SandboxError(f"Asterisk exited during start-up ({console}):\n{tail}")
            try:
                out = self.cli(
                    "core waitfullybooted", timeout=max(1.0, deadline - time.monotonic())
                )
                if "fully booted" in out.lower():
                    return
                last = out
            except (SandboxError, subprocess.TimeoutExpired) as exc:
                last = str(exc)
            time.sleep(0.2)
        raise SandboxError(f"Asterisk did not boot within {timeout:.0f}s: {last}")

    def down(self, timeout: float = 20.0) -> None:
        """Stop the instance's Asterisk (hanging up its calls); a stopped one is left alone."""
        st = self.load()
        if st is None or st.pid is None or not self.is_running():
            return
        try:
            self.cli("core stop now", timeout=timeout)
        except (SandboxError, subprocess.TimeoutExpired):
            logger.warning("sandbox %s: CLI stop failed, killing pid %s", self.name, st.pid)
        if not _wait_gone(st.pid, timeout):
            os.killpg(st.pid, signal.SIGKILL)
            _wait_gone(st.pid, 10)
        st.pid = None
        self._save(st)

    def kill(self) -> None:
        """SIGKILL Asterisk (a crash, for tests)."""
        st = self.load()
        if st is not None and st.pid is not None and self.is_running():
            os.killpg(st.pid, signal.SIGKILL)
            _wait_gone(st.pid, 10)

    def restart(self, timeout: float = 90.0) -> InstanceState:
        """Stop and start again on the same ports and files (queue_log keeps growing)."""
        st = self.load()
        if st is None:
            raise SandboxError(f"sandbox {self.name} was never started")
        self.down()
        self._render(st, st.globals or {})
        st.pid = self._spawn()
        self._save(st)
        self._wait_booted(st, timeout)
        return st

    def purge(self) -> None:
        """Stop the instance and delete its folder."""
        self.down()
        if self.dir.exists():
            shutil.rmtree(self.dir)


def carrier_on_loopback(text: str, host: str, port: int) -> str:
    """pjsip.conf `text` with the carrier's placeholder address replaced by `host` (`port` for
    the contact): the trunk identifies calls from the loopback address and calls out to it."""

    def contact(section: str, value: str) -> str | None:
        if section != "carrier" or CARRIER_PLACEHOLDER not in value:
            return None
        return f"sip:{host}:{port}"

    def match(section: str, value: str) -> str | None:
        return value.replace(CARRIER_PLACEHOLDER, host) if section == "carrier" else None

    text = replace_options(text, "contact", contact)
    text = replace_options(text, "match", match)
    if CARRIER_PLACEHOLDER in "".join(
        v for _, v in options(text, "contact") + options(text, "match")
    ):
        raise SandboxError("pjsip.conf: the carrier's placeholder address is still there")
    return text


def cdr_into_postgres(etc: Path, url: str) -> None:
    """Turn on CDRs into PostgreSQL in the configuration folder `etc`, as a site would: the CDR
    engine on (cdr.conf), cdr_pgsql loaded (modules.conf) and given the database (cdr_pgsql.conf).
    """
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in ("postgresql", "postgres") or not parts.path[1:]:
        raise SandboxError(f"CDR database {parts.scheme}://…: expected postgresql://…/dbname")
    host = parts.hostname or "127.0.0.1"
    if not host.startswith("127.") and host != "localhost":
        raise SandboxError(f"CDR database host {host}: a sandbox writes to loopback only")
    conf = etc / "cdr_pgsql.conf"
    text = conf.read_text()
    for key, value in (
        ("hostname", host),
        ("port", str(parts.port or 5432)),
        ("dbname", unquote(parts.path[1:])),
        ("user", unquote(parts.username or "postgres")),
        ("password", unquote(parts.password or "")),
    ):
        text = set_option(text, "global", key, value)
    conf.write_text(text)
    cdr = etc / "cdr.conf"
    cdr.write_text(set_option(cdr.read_text(), "general", "enable", "yes"))
    modules = etc / "modules.conf"
    modules.write_text(modules.read_text().replace("noload => cdr_pgsql.so\n", ""))


def _wait_gone(pid: int, timeout: float) -> bool:
    """Wait until `pid` has fully exited (reaping it if it is our child); False on timeout.

    Its command line empties before an exiting process has closed its sockets, so "not running"
    is not yet "gone": a new Asterisk started too early finds the old control socket and exits.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            try:
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except (FileNotFoundError, IndexError):
                return True
            if state in ("Z", "X"):
                return True
        time.sleep(0.05)
    return False
