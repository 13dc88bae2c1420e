"""Rate limits as an attacker meets them, against the running server on a real SQLite file: guesses
sent in parallel, one address trying to lock out others (clients at 127.0.0.2, 127.0.0.3, ...),
a flood of distinct names, and a login being checked while other requests go on."""

import asyncio
from pathlib import Path

import aiohttp
from argon2 import PasswordHasher
from sqlalchemy import update

from desk.models import Staff
from desk.web.app import create_app
from desk.web.keys import LIMITER, SESSIONS
from desk.web.limits import login_keys
from tests.support.staff import PASSWORD, add_staff
from tests.support.web import desk_server, desk_settings, from_address


async def _submit(
    http: aiohttp.ClientSession, phone: str = "13912345678"
) -> aiohttp.ClientResponse:
    body = {"type": "fault", "symptom": "打印机卡纸", "phone": phone}
    return await http.post("/portal/api/requests", json=body)


async def test_parallel_login_guesses_are_limited(tmp_path: Path) -> None:
    """30 guesses sent at once for one account: only the first few are checked, the others 429."""
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as attacker:
        await add_staff(server.app, "zhangwei", "agent", "1001")
        guesses = [{"username": "zhangwei", "password": f"guess {i:04d}"} for i in range(30)]
        answers = await asyncio.gather(*(attacker.post("/api/login", json=g) for g in guesses))
        statuses = sorted(r.status for r in answers)
        assert statuses.count(401) <= 5 and statuses.count(429) >= 25, statuses
        # Even the right password waits now, from the attacker's address.
        right = {"username": "zhangwei", "password": PASSWORD}
        assert (await attacker.post("/api/login", json=right)).status == 429


async def test_failures_from_one_address_do_not_lock_the_account_elsewhere(tmp_path: Path) -> None:
    async with (
        desk_server(tmp_path) as server,
        from_address(server, "127.0.0.2") as attacker,
        from_address(server, "127.0.0.3") as user,
    ):
        await add_staff(server.app, "zhangwei", "agent", "1001")
        for i in range(6):
            await attacker.post(
                "/api/login", json={"username": "zhangwei", "password": f"x{i}xxxxxx"}
            )
        r = await attacker.post(
            "/api/login", json={"username": "zhangwei", "password": "another one"}
        )
        assert r.status == 429
        r = await user.post("/api/login", json={"username": "zhangwei", "password": PASSWORD})
        assert r.status == 200, await r.text()


async def test_one_address_cannot_lock_everybody_out_of_the_portal(tmp_path: Path) -> None:
    async with (
        desk_server(tmp_path) as server,
        from_address(server, "127.0.0.2") as attacker,
        from_address(server, "127.0.0.3") as user,
    ):
        number = (await (await _submit(user)).json())["number"]
        for i in range(12):
            await attacker.get(
                f"/portal/api/incidents/{number}", params={"phone": f"1380000{i:04d}"}
            )
        r = await attacker.get(f"/portal/api/incidents/{number}", params={"phone": "13912345678"})
        assert r.status == 429
        r = await user.get(f"/portal/api/incidents/{number}", params={"phone": "13912345678"})
        assert r.status == 200 and (await r.json())["number"] == number


async def test_parallel_portal_guesses_are_limited(tmp_path: Path) -> None:
    """150 phone guesses for a known incident number sent at once, the right one among them:
    at most the limit of them is looked at."""
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as attacker:
        async with from_address(server, "127.0.0.3") as user:
            number = (await (await _submit(user, "13912345678")).json())["number"]
        phones = [f"139123{i:05d}" for i in range(45000, 45149)] + ["13912345678"]
        answers = await asyncio.gather(
            *(attacker.get(f"/portal/api/incidents/{number}", params={"phone": p}) for p in phones)
        )
        looked_at = [r.status for r in answers if r.status != 429]
        assert len(looked_at) <= 10, sorted(looked_at)


async def test_portal_submissions_are_limited_per_address(tmp_path: Path) -> None:
    async with (
        desk_server(tmp_path) as server,
        from_address(server, "127.0.0.2") as flooder,
        from_address(server, "127.0.0.3") as user,
    ):
        answers = await asyncio.gather(*(_submit(flooder) for _ in range(40)))
        statuses = sorted(r.status for r in answers)
        assert statuses.count(201) <= 10 and statuses.count(429) >= 30, statuses
        assert (await _submit(user)).status == 201  # someone else is not held up


async def test_limits_follow_the_client_behind_a_trusted_proxy(tmp_path: Path) -> None:
    """Behind a reverse proxy every request comes from the proxy; with CTI_TRUSTED_PROXIES the
    limits count per client (X-Forwarded-For), and without it the header is ignored, so an
    attacker cannot make up addresses to get more guesses."""
    async with desk_server(tmp_path, CTI_TRUSTED_PROXIES="127.0.0.2") as server:
        async with from_address(server, "127.0.0.2") as proxy:
            await add_staff(server.app, "zhangwei", "agent", "1001")
            for i in range(6):
                await proxy.post("/api/login", json={"username": "zhangwei", "password": f"p{i}ppppppp"},
                                 headers={"X-Forwarded-For": "192.0.2.7"})  # fmt: skip
            r = await proxy.post("/api/login", json={"username": "zhangwei", "password": PASSWORD},
                                 headers={"X-Forwarded-For": "192.0.2.7"})  # fmt: skip
            assert r.status == 429
            r = await proxy.post("/api/login", json={"username": "zhangwei", "password": PASSWORD},
                                 headers={"X-Forwarded-For": "192.0.2.7, 192.0.2.8"})  # fmt: skip
            assert r.status == 200
        async with from_address(server, "127.0.0.3") as attacker:
            for i in range(6):
                await attacker.post("/api/login", json={"username": "zhangwei", "password": f"q{i}qqqqqq"},
                                    headers={"X-Forwarded-For": f"192.0.2.{100 + i}"})  # fmt: skip
            r = await attacker.post("/api/login", json={"username": "zhangwei", "password": PASSWORD},
                                    headers={"X-Forwarded-For": "192.0.2.200"})  # fmt: skip
            assert r.status == 429


def test_limiter_memory_stays_bounded_with_100k_names(tmp_path: Path) -> None:
    """A flood of distinct names from distinct addresses, as the login counts them: the limiter
    keeps a bounded number of entries, and the newest ones still count."""
    app = create_app(desk_settings(tmp_path), with_core=False)
    limiter = app[LIMITER]
    for i in range(100_000):
        address = f"127.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        assert limiter.acquire(login_keys(f"name{i}", address)) is not None
    assert len(limiter) <= limiter.max_keys <= 50_000
    for _ in range(4):
        assert limiter.acquire(login_keys("name99999", "127.1.134.159")) is not None
    assert limiter.acquire(login_keys("name99999", "127.1.134.159")) is None


async def test_a_login_being_checked_does_not_stall_other_requests(tmp_path: Path) -> None:
    """The password hash is checked off the event loop: while one login with a deliberately
    costly argon2 hash is being checked, the server goes on answering other requests. Counted in
    requests answered during the middle half of the login (with the hash checked on the loop,
    that stretch is all hash checking and nothing else is answered), not in seconds."""
    async with desk_server(tmp_path) as server, from_address(server, "127.0.0.2") as browser:
        await add_staff(server.app, "zhangwei", "agent", "1001")
        costly = PasswordHasher(time_cost=20, memory_cost=65536, parallelism=1).hash(PASSWORD)
        async with server.app[SESSIONS].begin() as s:
            await s.execute(update(Staff).values(password_hash=costly))
        loop = asyncio.get_running_loop()
        started = loop.time()
        login = asyncio.create_task(
            browser.post("/api/login", json={"username": "zhangwei", "password": PASSWORD})
        )
        answered: list[float] = []
        while not login.done():
            r = await browser.get("/login")
            assert r.status == 200
            answered.append(loop.time())
        assert (await login).status == 200
        span = loop.time() - started
        middle = [t for t in answered if started + span / 4 < t < started + span * 3 / 4]
        assert len(middle) >= 10, (len(middle), len(answered))
