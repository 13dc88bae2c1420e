"""A Redis server of the tests' own (Debian's redis-server, which scripts/env.sh installs): a free
port on 127.0.0.1, nothing written to disk, the default user off and one user `cti` with a
password that may use the `cti:` streams only — as docs/nodes.md tells a site to run it."""

import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import redis

from cti.sandbox.instance import free_port

USER = "cti"
# What the nodes need (streams, ping, the connection handshake) on their own keys, nothing else.
ACL = ["on", "~cti:*", "resetchannels", "-@all", "+@stream", "+ping", "+hello", "+auth",
       "+select"]  # fmt: skip


class RedisServer:
    """start(), url(), stop()."""

    def __init__(self) -> None:
        self.port = 0
        self.password = secrets.token_urlsafe(24)
        self.dir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> "RedisServer":
        """Run redis-server on a free loopback port and wait until it answers."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: run scripts/env.sh")
        self.dir = Path(tempfile.mkdtemp(prefix="cti-redis-"))
        self.port = free_port()
        self._run()
        return self

    def _run(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None and self.dir is not None
        conf = self.dir / "redis.conf"
        conf.write_text(
            f"bind 127.0.0.1\nport {self.port}\nprotected-mode yes\ndir {self.dir}\n"
            'save ""\nappendonly no\n'
            f"user default off\nuser {USER} {' '.join(ACL)} >{self.password}\n"
        )
        self.proc = subprocess.Popen(
            [binary, str(conf)],
            stdout=(self.dir / "redis.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                redis.Redis(port=self.port, username=USER, password=self.password).ping()
                return
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server did not start: {self.log()}") from None
                time.sleep(0.05)

    def log(self) -> str:
        """What the server wrote."""
        return (self.dir / "redis.log").read_text() if self.dir else ""

    def url(self) -> str:
        """The broker URL a node takes (CTI_BROKER_URL)."""
        return f"redis://{USER}:{self.password}@127.0.0.1:{self.port}/0"

    def restart(self, down: float = 0.0) -> None:
        """Stop the server (its streams are lost: nothing is saved), wait `down` seconds, start it
        again on the same port with the same password."""
        self._kill()
        time.sleep(down)
        self._run()

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        self._kill()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _kill(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
