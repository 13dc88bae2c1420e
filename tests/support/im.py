"""A real local HTTP server standing in for WeCom / DingTalk / Feishu / Slack / a generic webhook:
it keeps every POST and checks the signatures the way those services do."""

import base64
import hashlib
import hmac
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from cti.routing.im import webhook_signature


@dataclass
class Received:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]
    signature_ok: bool | None  # None: the channel is not signed


@dataclass
class ImReceiver:
    secrets: dict[str, str] = field(default_factory=dict)  # path -> secret
    received: list[Received] = field(default_factory=list)
    runner: web.AppRunner | None = None
    port: int = 0

    async def start(self) -> "ImReceiver":
        app = web.Application()
        app.router.add_post("/{name}", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def url(self, name: str, query: str = "") -> str:
        return f"http://127.0.0.1:{self.port}/{name}{'?' + query if query else ''}"

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw)
        name = request.match_info["name"]
        secret = self.secrets.get(name)
        query = {k: v[0] for k, v in parse_qs(urlsplit(str(request.url)).query).items()}
        ok: bool | None = None
        if secret and name.startswith("hook"):
            ts = request.headers.get("X-CTI-Timestamp", "")
            ok = hmac.compare_digest(
                request.headers.get("X-CTI-Signature", ""), webhook_signature(secret, ts, raw)
            )
            ok = ok and abs(time.time() - int(ts)) < 300
        elif secret and name.startswith("ding"):
            ts = query.get("timestamp", "0")
            expected = base64.b64encode(
                hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
            )
            ok = (
                hmac.compare_digest(query.get("sign", ""), expected.decode())
                and abs(time.time() * 1000 - int(ts)) < 3.6e6
            )
        elif secret and name.startswith("feishu"):
            ts = body.get("timestamp", "0")
            expected = base64.b64encode(
                hmac.new(f"{ts}\n{secret}".encode(), b"", hashlib.sha256).digest()
            )
            ok = hmac.compare_digest(body.get("sign", ""), expected.decode())
        self.received.append(Received(name, query, dict(request.headers), body, ok))
        if ok is False:
            return web.json_response({"errcode": 310000, "errmsg": "sign not match"}, status=403)
        return web.json_response({"errcode": 0, "errmsg": "ok"})

    def of(self, kind: str) -> list[Received]:
        """Messages of one kind (generic webhook payloads carry it as `type`)."""
        return [r for r in self.received if r.body.get("type") == kind]
