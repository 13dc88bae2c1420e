"""An OpenLDAP server of the tests' own: Debian's slapd with a slapd.conf in a temporary folder,
an mdb database, on a free loopback port, stopped and deleted at the end. Entries are added over
LDAP with ldap3 as the root DN (the same client the server uses)."""

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import ldap3

from cti.sandbox.instance import free_port

SLAPD = Path("/usr/sbin/slapd")
SCHEMA = Path("/etc/ldap/schema")
SUFFIX = "dc=example,dc=com"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "ldap-test-secret"


class SlapdServer:
    """start(), add(), stop()."""

    def __init__(self) -> None:
        if not SLAPD.exists():
            raise RuntimeError("slapd is not installed: run scripts/env.sh (it installs slapd)")
        self.port = 0
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """ldap://127.0.0.1:PORT"""
        return f"ldap://127.0.0.1:{self.port}"

    def start(self) -> "SlapdServer":
        """Write the configuration and run slapd in the foreground (-d 0) on a free port."""
        self.dir = Path(tempfile.mkdtemp(prefix="cti-slapd-"))
        (self.dir / "db").mkdir()
        schemas = "".join(
            f"include {SCHEMA / name}.schema\n"
            for name in ("core", "cosine", "inetorgperson", "nis")
        )
        (self.dir / "slapd.conf").write_text(
            f"{schemas}pidfile {self.dir / 'slapd.pid'}\n"
            "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
            f'database mdb\nmaxsize 10485760\nsuffix "{SUFFIX}"\nrootdn "{ROOT_DN}"\n'
            f"rootpw {ROOT_PASSWORD}\ndirectory {self.dir / 'db'}\n"
        )
        self.port = free_port()
        self.proc = subprocess.Popen(
            [str(SLAPD), "-f", str(self.dir / "slapd.conf"), "-h", f"{self.url}/", "-d", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"slapd exited: {err[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError("slapd did not start listening")
        self.add(SUFFIX, ["dcObject", "organization"], {"o": "Example", "dc": "example"})
        return self

    def add(self, dn: str, classes: list[str], attributes: dict[str, object]) -> None:
        """Add one entry as the root DN."""
        conn = ldap3.Connection(self.url, ROOT_DN, ROOT_PASSWORD, auto_bind=True)
        try:
            if not conn.add(dn, classes, attributes):
                raise RuntimeError(f"add {dn}: {conn.result}")
        finally:
            conn.unbind()

    def modify(self, dn: str, changes: dict[str, list[tuple[str, list[object]]]]) -> None:
        """Change one entry as the root DN."""
        conn = ldap3.Connection(self.url, ROOT_DN, ROOT_PASSWORD, auto_bind=True)
        try:
            if not conn.modify(dn, changes):
                raise RuntimeError(f"modify {dn}: {conn.result}")
        finally:
            conn.unbind()

    def stop(self) -> None:
        """Stop slapd and delete its folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
