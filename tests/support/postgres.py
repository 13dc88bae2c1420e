"""A PostgreSQL server of the tests' own: Debian's initdb and pg_ctl in a temporary folder, on a
free loopback port, trust authentication on 127.0.0.1 only, stopped and deleted at the end.
Or, with CTI_TEST_DATABASE_URL=postgresql://user[:password]@host:port/db, a server that is
already running (a CI service, a DBA's test cluster): the tests then only create and drop
databases of their own on it (`server()` picks).

initdb refuses to run as root, so as root the server runs as the `postgres` user (runuser).
Each test gets a database of its own (`create_database`), dropped afterwards.
"""

import glob
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

from cti.sandbox.instance import free_port

SUPERUSER = "postgres"


def bin_dir() -> Path:
    """The newest installed PostgreSQL's bin folder (scripts/env.sh installs Debian's)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    if not found:
        raise RuntimeError(
            "PostgreSQL is not installed: run scripts/env.sh (it installs Debian's postgresql)"
        )
    return Path(found[-1]).parent


def _major(path: str) -> int:
    return int(Path(path).parts[-3])


class PostgresServer:
    """One throw-away cluster: start(), create_database(), drop_database(), stop()."""

    def __init__(self) -> None:
        self.bin = bin_dir()
        self.port = 0
        self.dir: Path | None = None
        self._as_postgres = os.geteuid() == 0

    def _run(self, *cmd: str, timeout: float = 60) -> str:
        argv = [str(self.bin / cmd[0]), *cmd[1:]]
        if self._as_postgres:
            argv = ["runuser", "-u", SUPERUSER, "--", *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed: {proc.stdout}{proc.stderr}")
        return proc.stdout

    def start(self) -> "PostgresServer":
        """initdb a fresh cluster and start it on a free port of 127.0.0.1."""
        self.dir = Path(tempfile.mkdtemp(prefix="cti-pg-"))
        if self._as_postgres:
            shutil.chown(self.dir, SUPERUSER, SUPERUSER)
        data = self.dir / "data"
        self._run("initdb", "-D", str(data), "-U", SUPERUSER, "-A", "trust", "-E", "UTF8",
                  "--no-locale", "--no-sync")  # fmt: skip
        self.port = free_port()
        # Loopback only, no Unix socket outside our folder, fsync off (test data is disposable).
        opts = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.dir} -c fsync=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(data), "-o", opts, "-l", str(self.dir / "server.log"),
                  "-w", "-t", "60", "start")  # fmt: skip
        return self

    def stop(self) -> None:
        """Stop the server and delete its folder."""
        if self.dir is None:
            return
        try:
            self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def _psql(self, sql: str) -> str:
        return self._run("psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER,
                         "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc", sql)  # fmt: skip

    def dsn(self, database: str = "postgres") -> str:
        """A libpq/asyncpg URL of a database on this server."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL the server's settings take."""
        return f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its name."""
        name = f"cti_test_{uuid.uuid4().hex[:10]}"
        self._psql(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        """Drop a test database (whoever is still connected is disconnected)."""
        for _ in range(3):
            try:
                self._psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                return
            except RuntimeError:
                time.sleep(0.5)


class ExternalPostgres(PostgresServer):
    """A server someone else runs (CTI_TEST_DATABASE_URL): databases of our own on it, nothing
    else touched; start() and stop() only check and forget."""

    def __init__(self, url: str) -> None:
        super().__init__()
        parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://"))
        if parts.scheme not in ("postgresql", "postgres") or not parts.hostname:
            raise RuntimeError(
                f"CTI_TEST_DATABASE_URL must be postgresql://user@host:port/db: {url!r}"
            )
        self.host = parts.hostname
        self.port = parts.port or 5432
        self.user = unquote(parts.username or SUPERUSER)
        self.password = unquote(parts.password or "")
        self._as_postgres = False

    def start(self) -> "PostgresServer":
        """Check that the server answers."""
        self._psql("SELECT 1")
        return self

    def stop(self) -> None:
        """Nothing to stop: the server is not ours."""

    def _psql(self, sql: str) -> str:
        env = {**os.environ, "PGPASSWORD": self.password, "PGCONNECT_TIMEOUT": "10"}
        argv = [str(self.bin / "psql"), "-h", self.host, "-p", str(self.port), "-U", self.user,
                "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-Atc", sql]  # fmt: skip
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, env=env, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"psql on {self.host}:{self.port} failed: {proc.stderr}")
        return proc.stdout

    def _auth(self) -> str:
        from urllib.parse import quote

        return quote(self.user) + (":" + quote(self.password) if self.password else "")

    def dsn(self, database: str = "postgres") -> str:
        """A libpq/asyncpg URL of a database on this server."""
        return f"postgresql://{self._auth()}@{self.host}:{self.port}/{database}"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL the server's settings take."""
        return f"postgresql+asyncpg://{self._auth()}@{self.host}:{self.port}/{database}"


def server() -> PostgresServer:
    """The tests' PostgreSQL: CTI_TEST_DATABASE_URL's server, else one of our own."""
    url = os.environ.get("CTI_TEST_DATABASE_URL", "")
    return ExternalPostgres(url) if url else PostgresServer()


def wanted_for_every_test() -> bool:
    """The run asks for PostgreSQL everywhere: CTI_TEST_DATABASE=postgresql, or a
    CTI_TEST_DATABASE_URL given."""
    return os.environ.get("CTI_TEST_DATABASE", "sqlite") == "postgresql" or bool(
        os.environ.get("CTI_TEST_DATABASE_URL")
    )
