"""panoramisk's AMI wire protocol, with its 1.4 defects mended in one place.

- Bytes are decoded incrementally, so a multibyte UTF-8 character split across two TCP reads
  (张三 arriving as 三) survives.
- A frame longer than MAX_FRAME_CHARS is counted and dropped whole, however the reads cut it; a
  frame that does not parse is counted and skipped. What comes out never depends on the reads,
  and a frame trickled in small reads costs time in proportion to its size.
- An exception while pairing a response with its action fails that action only; in panoramisk it
  escapes into asyncio and drops the connection (e.g. Originate without an explicit Async).
- Actions pending when the connection drops fail with AmiDisconnected; panoramisk would queue them
  and replay them minutes later after a reconnect.
- Unsolicited events go the short way: an event the factory does not parse (most of Asterisk's
  stream: DeviceStateChange, Newstate, Dial*, VarSet, ...) is counted and dropped on its first
  line, and one it parses becomes a plain dict, never a panoramisk Message (whose case-insensitive
  dict was most of the server's time at 30 calls a second). Responses and list rows (frames with
  an ActionID) and Shutdown still take panoramisk's path, which pairs them with their actions.
"""

import codecs
import logging
from typing import Any
from urllib.parse import unquote

from panoramisk import ami_protocol, utils
from panoramisk.message import Message

from cti.errors import AmiDisconnected, ProtocolError

logger = logging.getLogger(__name__)

EOL = "\r\n"
FRAME_END = EOL + EOL
# No legitimate AMI frame comes near this; a peer that never ends its frame costs us no more.
MAX_FRAME_CHARS = 1 << 20


class CtiAmiProtocol(ami_protocol.AMIProtocol):  # type: ignore[misc]
    """AMIProtocol with incremental UTF-8 decoding, bounded frames and contained faults."""

    version: str | None
    responses: dict[str, Any]
    closed: bool

    def connection_made(self, transport: Any) -> None:
        """Set up per-connection state (the decoder and the partial frame)."""
        super().connection_made(transport)
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        # The unfinished frame, as the reads that brought it (joined once, when it ends, so a
        # frame trickled in small reads costs time in proportion to its size, not its square).
        self._pieces: list[str] = []
        self._held = 0
        self._tail = ""  # the last characters held, where a frame end may have begun
        self._skipping = False  # inside a frame already dropped as too long
        self.garbled = 0
        self.skipped = 0  # unsolicited events nobody parses, dropped unread

    def data_received(self, data: bytes) -> None:
        """Split the byte stream into AMI frames and hand each to `handle_message`.

        What comes out does not depend on how the stream was cut into reads.
        """
        text = self._decoder.decode(data)
        if FRAME_END not in self._tail + text:
            self._hold(text)
            return
        # While skipping, nothing is held but the last characters, where the end may have begun.
        held = self._tail if self._skipping else "".join(self._pieces)
        frames = (held + text).split(FRAME_END)
        self._pieces, self._held, self._tail = [], 0, ""
        rest = frames.pop()
        if self._skipping:
            # The end of a frame already counted and dropped as too long.
            self._skipping = False
            frames.pop(0)
        for frame in frames:
            self._frame(frame)
        self._hold(rest)

    def _hold(self, text: str) -> None:
        if not text:
            return
        self._tail = (self._tail + text)[-(len(FRAME_END) - 1) :]
        if self._skipping:
            return
        self._pieces.append(text)
        self._held += len(text)
        # What is held may end with the first characters of the frame end: only past those is
        # the frame itself surely too long (the same bound as for a frame that arrived whole).
        if self._held > MAX_FRAME_CHARS + len(FRAME_END) - 1:
            logger.error("AMI frame exceeds %d characters without an end; dropped", MAX_FRAME_CHARS)
            self.garbled += 1
            self._pieces, self._held, self._skipping = [], 0, True

    def _frame(self, frame: str) -> None:
        if len(frame) > MAX_FRAME_CHARS:
            logger.error("AMI frame exceeds %d characters; dropped", MAX_FRAME_CHARS)
            self.garbled += 1
            return
        # The banner line is the start of the first frame (the login response follows it).
        if self.version is None and frame.startswith("Asterisk Call Manager/"):
            line, _, frame = frame.partition(EOL)
            self.version = line.partition("/")[2].strip()
        # Asterisk sometimes ends a frame with a single EOL before the next one.
        frame = frame.strip()
        if not frame:
            return
        if frame.startswith("Event: ") and "\r\nActionID:" not in frame:
            end = frame.find(EOL)
            name = frame[7:] if end < 0 else frame[7:end]
            if name != "Shutdown":
                self._event(name, frame)
                return
        try:
            message = Message.from_line(frame)
        except Exception:
            message = None
        if message is None:
            self.garbled += 1
            logger.warning("unparseable AMI frame skipped: %.200r", frame)
            return
        try:
            self.handle_message(message)
        except Exception as exc:
            self.garbled += 1
            logger.exception("AMI frame could not be handled: %.200r", frame)
            self._fail_action_of(message, exc)

    def _event(self, name: str, frame: str) -> None:
        """An unsolicited event: dropped unread unless the factory parses it."""
        wanted: frozenset[str] | None = getattr(self.factory, "wanted_events", None)
        if wanted is not None and name not in wanted:
            self.skipped += 1
            return
        # The same headers panoramisk's Message.from_line would give (its empty "content" too).
        headers: dict[str, Any] = {}
        for line in frame.split(EOL):
            key, sep, value = line.partition(": ")
            if not sep:
                continue  # a line without ": " carries no header
            if key.lower() == "result":
                value = unquote(value).strip()
            if key in headers:  # repeated: a list, as panoramisk gives it (the parsers refuse it)
                old = headers[key]
                headers[key] = [*old, value] if isinstance(old, list) else [old, value]
            else:
                headers[key] = value
        headers.setdefault("content", "")
        try:
            self.factory.dispatch(headers)
        except Exception:
            self.garbled += 1
            logger.exception("AMI event could not be handled: %.200r", frame)

    def _fail_action_of(self, message: Message, exc: Exception) -> None:
        key = message.id  # a list when the frame repeats its ActionID: no action's then
        action = self.responses.pop(key, None) if isinstance(key, str) and key else None
        if action is not None and not action.future.done():
            action.future.set_exception(ProtocolError(f"response to {action['action']}: {exc!r}"))

    def close(self) -> None:
        """Close the transport and fail, rather than replay, every pending action."""
        pending, self.responses = self.responses, {}
        for action in {id(a): a for a in pending.values()}.values():
            if not action.future.done():
                action.future.set_exception(
                    AmiDisconnected(f"connection closed before {action['action']} completed")
                )
        if not self.closed:
            try:
                self.transport.close()
            finally:
                self.closed = True


def eol() -> str:
    """The line ending panoramisk writes actions with (a regression test watches it)."""
    return str(utils.EOL)


class CtiAction(ami_protocol.actions.Action):  # type: ignore[misc]
    """An AMI action whose response pairing cannot hang.

    `as_list` is always explicit: panoramisk guesses it from the first response, and its guesses
    leave QueueAdd ("Added interface to queue") waiting forever and make an Originate without an
    Async header raise KeyError inside the protocol. A list action refused with a single
    `Response: Error` resolves at once instead of waiting for list items that never come.
    """

    def __init__(self, headers: dict[str, Any], *, as_list: bool) -> None:
        super().__init__(headers, as_list=as_list)

    def add_message(self, message: Message) -> bool:
        """Record one response frame; True once the action is complete."""
        if (
            self.as_list
            and not self.responses
            and message.get("Response") in ("Error", "Fail", "Failure")
        ):
            self.responses.append(message)
            if not self.future.done():
                self.future.set_result([message])
            return True
        return bool(super().add_message(message))
