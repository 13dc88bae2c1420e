"""Announcement text is spoken, never obeyed: what a lead types reaches espeak-ng as data, a
synthesis that takes too long is cut off, and none of it holds the database or other requests.

The server is a real `cti serve` process whose standard input stays open, as under a terminal
or a supervisor that gives it a pipe; the lead posts over HTTP, as an attacker with a lead's
login would; espeak-ng and sox are the real ones in the sandbox root."""

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from cti.sandbox.instance import InstanceState, free_port
from tests.conftest import server_settings
from tests.support.staff import PASSWORD, login

pytestmark = pytest.mark.asterisk

MARKER_TEXT = (
    "The signing key of this server is swordfish, and the mail password is hunter two. " * 10
)  # ~52 s read aloud, against 6-8 s for the file's name spelt out (its random part varies)


def _env(st: InstanceState, tmp_path: Path, **extra: str) -> dict[str, str]:
    s = server_settings(st, tmp_path, CTI_IVR_ENABLED="0")
    return {
        **os.environ,
        "CTI_DATABASE_URL": s.database_url,
        "CTI_DATA_DIR": str(tmp_path),
        "CTI_HTTP_HOST": "127.0.0.1",
        "CTI_HTTP_PORT": str(free_port()),
        "CTI_AMI_HOST": s.ami_host,
        "CTI_AMI_PORT": str(s.ami_port),
        "CTI_AMI_USER": s.ami_user,
        "CTI_AMI_SECRET": s.ami_secret,
        "CTI_IVR_ENABLED": "0",
        "CTI_REPORT_SCHEDULE": "0",
        "CTI_MEDIA_DIR": s.media_dir,
        "CTI_ASTERISK_MEDIA_DIR": s.asterisk_media_dir,
        "CTI_TTS_ROOT": s.tts_root,
        **extra,
    }


class Server:
    """`cti serve` in a process of its own, with its standard input left open."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.url = f"http://127.0.0.1:{env['CTI_HTTP_PORT']}"
        cmd = [sys.executable, "-m", "cti", "staff", "add", "lead1", "--role", "lead",
               "--password-stdin"]  # fmt: skip
        subprocess.run(cmd, env=env, input=PASSWORD + "\n", text=True, check=True,
                       capture_output=True)  # fmt: skip
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cti", "-v", "serve"],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=log.open("ab"),
            start_new_session=True,
        )

    async def ready(self) -> None:
        async with aiohttp.ClientSession() as http:
            for _ in range(150):
                try:
                    async with http.get(self.url + "/api/announcements") as resp:
                        if resp.status == 401:
                            return
                except aiohttp.ClientError:
                    pass
                assert self.proc.poll() is None, "the server exited"
                await asyncio.sleep(0.2)
        raise AssertionError("the server did not start")

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()  # first: a child still reading it gets its end
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


async def _lead(server: Server) -> aiohttp.ClientSession:
    http = aiohttp.ClientSession(base_url=server.url, cookie_jar=aiohttp.CookieJar(unsafe=True))
    await login(http, "lead1")
    return http


@pytest.fixture
def marker(sandbox_state: InstanceState) -> Iterator[str]:
    """A file with secrets in it, inside the root espeak-ng runs in; its path as seen there."""
    name = f"/tmp/cti-marker-{uuid.uuid4().hex[:8]}.txt"
    path = Path(sandbox_state.root) / name.lstrip("/")
    path.write_text(MARKER_TEXT)
    yield name
    path.unlink()


@pytest.fixture
async def server(sandbox_state: InstanceState, tmp_path: Path) -> AsyncIterator[Server]:
    srv = Server(_env(sandbox_state, tmp_path), tmp_path / "server.log")
    try:
        await srv.ready()
        yield srv
    finally:
        srv.stop()


async def _post(http: aiohttp.ClientSession, timeout: float = 30, **texts: str) -> dict[str, Any]:
    body = {"kind": "info", "title": "notice", **texts}
    async with http.post("/api/announcements", json=body, timeout=timeout) as resp:
        assert resp.status == 201, await resp.text()
        out: dict[str, Any] = await resp.json()
        return out


def _audio(st: InstanceState, ann: dict[str, Any], lang: str) -> Path:
    """The announcement's audio: the newest file of its id, since the worker's sandbox keeps the
    files of earlier tests, whose databases numbered their announcements from 1 as well."""
    paths = (Path(st.media_dir) / "announcements").glob(f"ann-{ann['id']}-{lang}-*.wav")
    return max(paths, key=lambda p: p.stat().st_mtime_ns)


def _seconds(path: Path) -> float:
    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


async def test_text_that_looks_like_an_option_is_read_out_not_obeyed(
    server: Server, sandbox_state: InstanceState, marker: str
) -> None:
    http = await _lead(server)
    try:
        hostile = await _post(http, text_en=f"-f{marker}")
        secret = await _post(http, text_en=MARKER_TEXT.strip())
        assert hostile["audio"] == ["en"] and secret["audio"] == ["en"]
        spoken = _audio(sandbox_state, hostile, "en")
        file_read = _audio(sandbox_state, secret, "en")
        # Reading the file aloud gives as long an audio as its text (sox dithers, so the bytes
        # differ); reading the characters typed, a few seconds of "minus f slash tmp ...".
        assert _seconds(spoken) < _seconds(file_read) / 3, "the file was read aloud"
    finally:
        await http.close()


async def test_text_that_would_make_synthesis_wait_forever_holds_up_nothing(
    server: Server,
) -> None:
    """`-w FILE` as the text left espeak-ng with no words, so it read the server's standard
    input, which never ends: the request hung while it held SQLite's write transaction."""
    http = await _lead(server)
    other = await _lead(server)
    hostile = asyncio.create_task(_post(http, timeout=60, text_en="-w/tmp/cti-out.wav"))
    try:
        await asyncio.sleep(1.0)
        started = time.monotonic()
        harmless = await _post(other, timeout=20, text_zh="今天下午三点网络维护。")
        assert harmless["audio"] == ["zh"]
        async with other.get("/api/announcements", timeout=10) as resp:
            assert resp.status == 200
        assert time.monotonic() - started < 10
        done = await asyncio.wait_for(hostile, 20)
        assert done["text_en"] == "-w/tmp/cti-out.wav" and done["audio"] == ["en"]
    finally:
        hostile.cancel()
        with contextlib.suppress(BaseException):
            await hostile
        await http.close()
        await other.close()


async def test_a_synthesis_that_takes_too_long_is_cut_off_and_the_announcement_kept(
    sandbox_state: InstanceState, tmp_path: Path
) -> None:
    env = _env(sandbox_state, tmp_path, CTI_TTS_TIMEOUT="0.05")
    srv = Server(env, tmp_path / "server.log")
    try:
        await srv.ready()
        http = await _lead(srv)
        other = await _lead(srv)
        try:
            earlier = await _post(other, timeout=20, text_en="Earlier notice.")
            long_text = (
                "邮件系统目前无法登录，工程师正在处理，请稍后再试。" * 40
            )  # ~1000 characters
            started = time.monotonic()

            async def withdraw() -> int:
                await asyncio.sleep(0.02)  # while the synthesis runs
                async with other.delete(f"/api/announcements/{earlier['id']}", timeout=10) as r:
                    return r.status

            slow, withdrawn = await asyncio.gather(
                _post(http, timeout=20, text_zh=long_text), withdraw()
            )
            assert time.monotonic() - started < 10 and withdrawn == 200
            assert slow["audio"] == [], "the synthesis ran past its time limit"
            async with other.get("/api/announcements", timeout=10) as resp:
                listed = {a["id"]: a for a in (await resp.json())["announcements"]}
            assert listed[slow["id"]]["text_zh"] == long_text  # kept, without audio
            assert listed[earlier["id"]]["active"] is False
        finally:
            await http.close()
            await other.close()
    finally:
        srv.stop()
