"""API fuzzing with schemathesis against the server's own OpenAPI document (GET /api/openapi.json):
every operation, as each role (agent, lead, admin: staff in the test database, logged in, the
CSRF header sent) and anonymously, with data that fits the document and data that does not.
Nothing may answer 500, and nothing may answer a status the document does not list.

The server runs in this process, in a thread of its own (schemathesis calls it over real HTTP on
127.0.0.1, synchronously), on a real SQLite file, without Asterisk. The budget is a fixed number
of examples per operation, role and mode, derandomised so every run sends the same requests:
CTI_FUZZ_EXAMPLES (default 8) makes it longer by hand, e.g. CTI_FUZZ_EXAMPLES=200, and
CTI_FUZZ_DATABASE_URL runs the main pass on another database. Two shorter passes follow: on the
tests' own PostgreSQL server, and with the core running on the Asterisk sandbox.

The requests depend only on the document, the operation, the mode and the path parameters, not
on the role or on any answer: each set is generated once per run (hypothesis, derandomised) and
shared by the roles' tests through files in the run's folder (on every xdist worker), then sent
as each role. Generating them was half of each role's time.
"""

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import pickle
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.core import NOT_SET
from schemathesis.specs.openapi.checks import status_code_conformance

from cti.journal.models import CallRecording
from cti.phone import NumberPlan
from cti.sandbox.instance import InstanceState, free_port
from desk.directory import upsert_user
from desk.web.app import create_app
from desk.web.auth import COOKIE
from desk.web.keys import SESSIONS
from tests.conftest import server_settings
from tests.support.staff import PASSWORD, add_staff
from tests.support.web import desk_settings

EXAMPLES = int(os.environ.get("CTI_FUZZ_EXAMPLES", "8"))
# By hand, another database (an empty PostgreSQL one, say); by default a SQLite file.
DATABASE = os.environ.get("CTI_FUZZ_DATABASE_URL", "")
# 503 (no link to Asterisk: this server runs without one) is an answer where the document lists
# it; any other 5xx fails, and status_code_conformance fails any status the document omits.
CONFIG = SchemathesisConfig.from_dict(
    {"checks": {"not_a_server_error": {"expected-statuses": ["2xx", "3xx", "4xx", "503"]}}}
)
ROLES = ("anonymous", "agent", "lead", "admin")


class ThreadedServer:
    """The desk's web application served from its own event loop in a thread."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(120)

    def start(self) -> None:
        self._thread.start()
        self.run(self._runner.setup())
        self.run(web.TCPSite(self._runner, "127.0.0.1", self.port).start())

    def stop(self) -> None:
        self.run(self._runner.cleanup())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)
        self.loop.close()


# Minutes of requests each: started first when the suite runs on several workers.
pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ThreadedServer]:
    """The desk without Asterisk, on a SQLite file (or CTI_FUZZ_DATABASE_URL); a server per
    test, since the anonymous pass's guesses at /api/login make its address wait."""
    extra = {"CTI_DATABASE_URL": DATABASE} if DATABASE else {}
    srv = ThreadedServer(create_app(desk_settings(tmp_path, **extra), with_core=False))
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def pg_server(tmp_path: Path, pg_url: str) -> Iterator[ThreadedServer]:
    """The desk without Asterisk on a PostgreSQL database of its own (NUL, column lengths)."""
    srv = ThreadedServer(
        create_app(desk_settings(tmp_path, CTI_DATABASE_URL=pg_url), with_core=False)
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def core_server(sandbox_state: InstanceState, tmp_path: Path) -> Iterator[ThreadedServer]:
    """The whole server on the Asterisk sandbox: AMI link, agents, wallboard (no IVR)."""
    settings = server_settings(sandbox_state, tmp_path, CTI_IVR_ENABLED="0",
                               CTI_REPORT_SCHEDULE="0", CTI_DATA_DIR=str(tmp_path))  # fmt: skip
    srv = ThreadedServer(create_app(settings))
    srv.start()
    yield srv
    srv.stop()


def _session(server: ThreadedServer, role: str) -> requests.Session:
    """A browser logged in as a member of staff with `role` (none for anonymous)."""
    http = requests.Session()
    if role != "anonymous":
        server.run(add_staff(server.app, f"fuzz-{role}", role, {"agent": "1001", "lead": "1002",
                                                                "admin": "1003"}[role]))  # fmt: skip
        r = http.post(
            f"{server.url}/api/login", json={"username": f"fuzz-{role}", "password": PASSWORD}
        )
        assert r.status_code == 200, r.text
        http.headers["X-CSRF-Token"] = r.json()["csrf"]
    return http


@dataclass
class Tally:
    """What a run did."""

    examples: int = 0
    operations: set[str] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def _records(
    server: ThreadedServer, lead: requests.Session, agent: requests.Session
) -> dict[str, str]:
    """Records for path parameters to name (random ones are mostly 404s): an incident, a user,
    an article, a configuration item, an announcement and an on-call entry."""
    url = server.url
    user = agent.get(f"{url}/api/users", params={"q": "E1001"}).json()["users"]
    if not user:
        server.run(_directory_user(server.app))
        user = agent.get(f"{url}/api/users", params={"q": "E1001"}).json()["users"]
    made = {
        "number": agent.post(f"{url}/api/incidents", json={"type": "fault", "symptom": "打印机卡纸",
                                                           "user_id": user[0]["id"]}).json()["number"],
        "user": str(user[0]["id"]),
        "knowledge": str(lead.post(f"{url}/api/knowledge", json={"title": "VPN", "body": "重装"}).json()["id"]),
        "cmdb": str(lead.post(f"{url}/api/cmdb", json={"name": f"mail{time.monotonic_ns()}"}).json()["id"]),
        "announcements": str(lead.post(f"{url}/api/announcements", json={"kind": "info", "title": "t",
                                                                          "text_zh": "通知"}).json()["id"]),
        "oncall": str(lead.post(f"{url}/api/oncall", json={"name": "值班", "mobile": "13900000001",
                                                           "starts_at": "2026-01-01T00:00:00",
                                                           "ends_at": "2027-01-01T00:00:00"}).json()["id"]),
    }  # fmt: skip
    made["recordings"] = str(server.run(_recording(server.app)))
    return made


async def _recording(app: web.Application) -> int:
    """A call recording's row (its audio need not exist: the route answers 404 then)."""
    async with app[SESSIONS].begin() as s:
        rec = CallRecording(call_uniqueid="1764460000.9", linkedid="1764460000.9", queue="helpdesk",
                            agent="1001", file="calls/1764460000.9.wav",
                            started_at=datetime.now(UTC))  # fmt: skip
        s.add(rec)
        await s.flush()
        return rec.id


async def _directory_user(app: web.Application) -> None:
    async with app[SESSIONS].begin() as s:
        await upsert_user(s, {"employee_no": "E1001", "name": "张三", "mobile": "13800138000",
                              "email": "zhangsan@example.com"}, by="fuzz", now=datetime.now(UTC),
                          plan=NumberPlan(area_code="10"))  # fmt: skip


def _real(op: Any, records: dict[str, str]) -> dict[str, str] | None:
    """Path parameters naming real records, for operations that have them."""
    if "{number}" in op.path:
        return {"number": records["number"]}
    if "{id}" in op.path:
        area = op.path.split("/")[2]
        key = "user" if area == "users" else area
        return {"id": records[key]} if key in records else None  # e.g. mail attachments: none
    return None


# The fields of a generated case that make its request (its operation is the reader's own).
FIELDS = ("method", "path_parameters", "cookies", "query", "media_type", "multipart_content_types")


def _generate(
    op: Any, mode: GenerationMode, path: dict[str, str] | None, examples: int
) -> list[Any]:
    """`examples` derandomised cases of the operation in this mode, as hypothesis makes them."""
    made: list[Any] = []

    @settings(max_examples=examples, derandomize=True, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(case=op.as_strategy(mode, path_parameters=path))
    def collect(case: Any) -> None:
        made.append(case)

    with contextlib.suppress(Unsatisfiable):  # nothing in this operation to make invalid
        collect()
    return made


def _cases(
    shared: Path, doc: dict[str, Any], op: Any, mode: GenerationMode,
    path: dict[str, str] | None, examples: int,
) -> list[Any]:  # fmt: skip
    """The generated cases, made by the first test of the run that asks and read by the others
    (the document's `servers`, this server's address, aside)."""
    what = [{k: v for k, v in doc.items() if k != "servers"}, op.label, mode.value, path,
            examples, schemathesis.__version__]  # fmt: skip
    key = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:24]
    file = shared / f"{key}.pickle"
    with (shared / f"{key}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one maker; the others wait for its file
        if not file.exists():
            made = [
                {
                    **{f: getattr(c, f) for f in FIELDS},
                    "headers": dict(c.headers or {}),
                    # NOT_SET (no body) is compared by identity: it does not survive pickling.
                    "body": None if c.body is NOT_SET else (c.body,),
                    "_meta": c._meta,
                }
                for c in _generate(op, mode, path, examples)
            ]
            file.with_suffix(".part").write_bytes(pickle.dumps(made))
            file.with_suffix(".part").rename(file)
    cases = []
    for fields in pickle.loads(file.read_bytes()):
        body = fields.pop("body")
        cases.append(op.Case(**fields, body=NOT_SET if body is None else body[0]))
    return cases


def _fuzz(
    server: ThreadedServer,
    role: str,
    http: requests.Session,
    records: dict[str, str],
    tally: Tally,
    examples: int,
    shared: Path,
) -> None:
    doc = http.get(f"{server.url}/api/openapi.json").json()
    schema = schemathesis.openapi.from_dict(doc, config=CONFIG)
    for result in schema.get_all_operations():
        op = result.ok()
        if op.path == "/api/login" and role != "anonymous":
            continue  # one guesser is enough (the limits answer 429 to the rest)
        tally.operations.add(op.label)
        passes = [(mode, None) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
        real = _real(op, records)
        if real is not None:
            passes += [(mode, real) for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
        for mode, path in passes:
            for case in _cases(shared, doc, op, mode, path, examples):
                tally.examples += 1
                # schemathesis makes up values for the security schemes; send the real ones.
                if COOKIE in http.cookies:
                    case.cookies = {**(case.cookies or {}), COOKIE: http.cookies[COOKIE]}
                    case.headers = {
                        **(case.headers or {}),
                        "X-CSRF-Token": http.headers["X-CSRF-Token"],
                    }
                try:
                    response = case.call(base_url=server.url, session=http, timeout=60)
                    tally.statuses[response.status_code] += 1
                    case.validate_response(
                        response, checks=[not_a_server_error, status_code_conformance]
                    )
                except (Exception, BaseExceptionGroup) as exc:  # every failing operation
                    where = f" on {path}" if path else ""
                    tally.failures.append(f"{role} {op.label} ({mode.value}{where}): {exc}\n"
                                          f"{case.as_curl_command()}")  # fmt: skip
                    break  # this operation's first failure, as hypothesis stopped at it


def _run(server: ThreadedServer, examples: int, role: str, shared: Path) -> Tally:
    """One role's pass (each role is a test of its own, so that the workers share them)."""
    tally = Tally()
    started = time.monotonic()
    # Everyone logs in first: the anonymous guesser at /api/login soon makes this address wait.
    sessions = {r: _session(server, r) for r in dict.fromkeys(("lead", "agent", role))}
    records = _records(server, sessions["lead"], sessions["agent"])
    _fuzz(server, role, sessions[role], records, tally, examples, shared)
    print(
        f"\nschemathesis: {len(tally.operations)} operations as {role}, "
        f"{tally.examples} examples ({examples} per operation and mode; twice for "
        f"operations on a record), {time.monotonic() - started:.0f} s; "
        f"statuses {dict(sorted(tally.statuses.items()))}"
    )
    return tally


@pytest.fixture
def cases(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of the run's generated cases (shared by the xdist workers of one run)."""
    base = tmp_path_factory.getbasetemp()
    folder = (base.parent if "PYTEST_XDIST_WORKER" in os.environ else base) / "fuzz-cases"
    folder.mkdir(exist_ok=True)
    return folder


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.timeout(3600)
def test_no_operation_answers_500_or_an_undocumented_status(
    server: ThreadedServer, role: str, cases: Path
) -> None:
    tally = _run(server, EXAMPLES, role, cases)
    assert not tally.failures, "\n\n".join(tally.failures)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.postgresql
@pytest.mark.timeout(3600)
def test_the_same_on_postgresql(pg_server: ThreadedServer, role: str, cases: Path) -> None:
    """A shorter pass on PostgreSQL, which refuses what SQLite stores (NUL, over-long text)."""
    tally = _run(pg_server, max(2, EXAMPLES // 4), role, cases)
    assert not tally.failures, "\n\n".join(tally.failures)


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.asterisk
@pytest.mark.timeout(3600)
def test_the_same_with_asterisk_behind(core_server: ThreadedServer, role: str, cases: Path) -> None:
    """One shorter pass with the core running on the sandbox: agent states, click-to-call and
    the wallboard answer for real there (instead of 503)."""
    tally = _run(core_server, max(2, EXAMPLES // 4), role, cases)
    assert not tally.failures, "\n\n".join(tally.failures)
