"""IM messages for back-up alerts and call offers: the payload each service expects and its
signature. Pure: building a request does no I/O (desk/overflow.py sends them).

- wecom (企业微信 group robot): markdown message; the key is in the webhook URL.
- dingtalk (钉钉 robot): markdown; signed with `timestamp` and `sign` query parameters,
  sign = base64(HMAC-SHA256(secret, "<timestamp ms>\\n<secret>")).
- feishu (飞书 bot): text; `timestamp` and `sign` in the body,
  sign = base64(HMAC-SHA256(key="<timestamp s>\\n<secret>", message="")).
- slack: incoming-webhook text with mrkdwn links.
- webhook: our own JSON; headers X-CTI-Timestamp and X-CTI-Signature =
  hex(HMAC-SHA256(secret, "<timestamp>.<body>")).
"""

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from cti.routing.config import ImChannel


@dataclass(frozen=True)
class ImRequest:
    """One HTTP POST to an IM service."""

    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Message:
    """What to say: a title, lines of text, an optional link, and structured data."""

    kind: str  # backup_alert, backup_cleared, call_offer, call_taken
    title: str
    lines: tuple[str, ...]
    link: str | None = None
    link_text: str = ""
    data: dict[str, Any] | None = None


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def webhook_signature(secret: str, timestamp: str, body: bytes) -> str:
    """The generic webhook's signature (receivers recompute it)."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def build(channel: ImChannel, msg: Message, now: float) -> ImRequest:
    """The request that delivers `msg` on `channel` at time `now`."""
    text = "\n".join(msg.lines)
    link_md = f"\n[{msg.link_text}]({msg.link})" if msg.link else ""
    headers = {"Content-Type": "application/json"}
    url = channel.url
    payload: dict[str, Any]
    if channel.kind == "wecom":
        payload = {
            "msgtype": "markdown",
            "markdown": {"content": f"**{msg.title}**\n{text}{link_md}"},
        }
    elif channel.kind == "dingtalk":
        payload = {
            "msgtype": "markdown",
            "markdown": {"title": msg.title, "text": f"### {msg.title}\n{text}{link_md}"},
        }
        if channel.secret:
            ts = str(int(now * 1000))
            sign = base64.b64encode(
                _hmac(channel.secret.encode(), f"{ts}\n{channel.secret}".encode())
            )
            url += (
                "&" if "?" in url else "?"
            ) + f"timestamp={ts}&sign={quote(sign.decode(), safe='')}"
    elif channel.kind == "feishu":
        link = f"\n{msg.link_text}: {msg.link}" if msg.link else ""
        payload = {"msg_type": "text", "content": {"text": f"{msg.title}\n{text}{link}"}}
        if channel.secret:
            ts = str(int(now))
            payload["timestamp"] = ts
            payload["sign"] = base64.b64encode(
                _hmac(f"{ts}\n{channel.secret}".encode(), b"")
            ).decode()
    elif channel.kind == "slack":
        link = f"\n<{msg.link}|{msg.link_text}>" if msg.link else ""
        payload = {"text": f"*{msg.title}*\n{text}{link}"}
    else:
        payload = {
            "type": msg.kind,
            "title": msg.title,
            "text": text,
            "link": msg.link,
            **(msg.data or {}),
        }
    body = json.dumps(payload, ensure_ascii=False).encode()
    if channel.kind == "webhook" and channel.secret:
        ts = str(int(now))
        headers["X-CTI-Timestamp"] = ts
        headers["X-CTI-Signature"] = webhook_signature(channel.secret, ts, body)
    return ImRequest(url, body, headers)
