"""Reading a raw e-mail (no I/O): who sent it, what it answers, its text and attachments, and
whether a machine wrote it (auto-replies, bounces, lists and our own mail are never filed)."""

import hashlib
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage, MIMEPart
from email.utils import getaddresses

# Limits on what one message may bring in: more is cut (text) or left out (files), and said so.
MAX_TEXT = 20_000
MAX_ATTACHMENT = 10 * 1024 * 1024
MAX_ATTACHMENTS = 20
_MSGID = re.compile(r"<[^<>\s]{1,245}>")
# The desk's own subject lines carry the number like this: "Incident 261130001: ..." or
# "事件 261130001：..."; a reply keeps it after "Re:".
NUMBER_IN_SUBJECT = re.compile(r"(?:事件|[Ii]ncident)\s*#?\s*(\d{9,20})")


@dataclass(frozen=True)
class Attachment:
    """A file that came with the message."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class Inbound:
    """An incoming e-mail, parsed."""

    message_id: str  # from the header, or made from the content when it has none
    in_reply_to: tuple[str, ...]  # In-Reply-To then References, nearest first
    sender: str  # the From address, lower case; "" when there is none
    sender_name: str
    subject: str
    text: str
    attachments: tuple[Attachment, ...]
    dropped: tuple[str, ...]  # attachments left out (too large, too many)
    automatic: str  # why a machine wrote it ("" when a person did)


class _Headers:
    """Header values as text, never an exception: the standard library's structured header
    parser raises (even IndexError) on some malformed values; those are read raw instead."""

    def __init__(self, raw: bytes, msg: EmailMessage) -> None:
        self.msg = msg
        self.plain = message_from_bytes(raw, policy=policy.compat32)

    def __call__(self, name: str) -> str:
        try:
            return str(self.msg.get(name, "") or "")
        except Exception:  # the stdlib parser's failures are not one exception class
            value = self.plain.get(name, "")
            try:
                return str(make_header(decode_header(str(value))))
            except Exception:
                return str(value)


def _ids(raw: str) -> list[str]:
    return _MSGID.findall(raw or "")


def automatic_reason(msg: EmailMessage, header: _Headers, sender: str, own: set[str]) -> str:
    """Why the message must not be answered nor filed ("" when it may): RFC 3834
    Auto-Submitted, the usual vendor headers of vacation replies, bulk and list mail,
    delivery reports, and mail from the desk's own address (a loop). `sender` is the one From
    address ("" when there is none, or several)."""
    auto = header("Auto-Submitted").strip().lower()
    if auto and auto != "no":
        return f"Auto-Submitted: {auto}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"):
        value = header(name).strip().lower()
        if value and (name != "X-Auto-Response-Suppress" or "all" in value or "oof" in value):
            return f"{name}: {value}"
    precedence = header("Precedence").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"Precedence: {precedence}"
    if header("List-Id") or header("List-Unsubscribe"):
        return "mailing-list mail"
    if _content_type(msg) == "multipart/report" or header("X-Failed-Recipients"):
        return "a delivery report"
    return_path = header("Return-Path").strip()
    if return_path == "<>":
        return "a bounce (empty return path)"
    local = sender.partition("@")[0]
    if local in ("mailer-daemon", "postmaster") or local.startswith(("noreply", "no-reply")):
        return f"from {sender}"
    if not sender:
        return "no sender address"
    if sender in own:
        return f"from the desk's own address {sender}"
    return ""


def _content_type(part: MIMEPart) -> str:
    try:
        return part.get_content_type()
    except Exception:  # see _Headers
        return "application/octet-stream"


def _decoded(part: MIMEPart) -> str:
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def _text_of(msg: EmailMessage) -> str:
    """The plain text (or the HTML's text) of the message; "" when there is none. The standard
    library raises many kinds of error on broken parts (a NUL in a charset name is ValueError):
    the raw bytes as UTF-8 then."""
    try:
        body = msg.get_body(preferencelist=("plain", "html"))
    except Exception:
        body = None
    if body is None:
        return ""
    try:
        content = body.get_content()
    except Exception:
        try:
            content = _decoded(body)
        except Exception:
            return ""
    if not isinstance(content, str):
        return ""
    if _content_type(body) == "text/html":
        content = re.sub(r"<[^>]*>", " ", content)
    return content.strip()


def _attachments(msg: EmailMessage) -> tuple[list[Attachment], list[str]]:
    attachments: list[Attachment] = []
    dropped: list[str] = []
    try:
        parts = list(msg.iter_attachments())
    except Exception:
        return [], ["(the message's parts could not be read)"]
    for part in parts:
        if not isinstance(part, EmailMessage):
            continue
        try:
            filename = (part.get_filename() or "attachment")[:200]
        except Exception:
            filename = "attachment"
        try:
            data = part.get_payload(decode=True)
            if not isinstance(data, bytes):
                data = part.as_bytes()  # an attached message: kept whole
        except Exception:
            dropped.append(f"{filename} (unreadable)")
            continue
        if len(data) > MAX_ATTACHMENT or len(attachments) >= MAX_ATTACHMENTS:
            dropped.append(f"{filename} ({len(data)} bytes)")
            continue
        attachments.append(Attachment(filename, _content_type(part)[:120], data))
    return attachments, dropped


def parse(raw: bytes, own: set[str]) -> Inbound:
    """The message in `raw` (RFC 5322 bytes); `own` is the desk's own addresses (lower case).
    Never raises on malformed mail: what cannot be read is left empty."""
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    header = _Headers(raw, msg)
    found = _ids(header("Message-ID"))
    message_id = found[0] if found else f"<{hashlib.sha256(raw).hexdigest()[:40]}@no-message-id>"
    refs = _ids(header("In-Reply-To")) + list(reversed(_ids(header("References"))))
    addresses = getaddresses([header("From")])
    name, sender = addresses[0] if len(addresses) == 1 else ("", "")
    if "@" not in sender:
        sender = ""
    attachments, dropped = _attachments(msg)
    text = _text_of(msg)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + "\n[…]"
    return Inbound(
        message_id=message_id,
        in_reply_to=tuple(dict.fromkeys(refs)),
        sender=sender.lower()[:200],
        sender_name=" ".join(name.split())[:120],
        subject=" ".join(header("Subject").split())[:500],
        text=text,
        attachments=tuple(attachments),
        dropped=tuple(dropped),
        automatic=automatic_reason(msg, header, sender.lower(), own),
    )
