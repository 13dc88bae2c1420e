"""panoramisk's AMI wire protocol, with its 1.4 defects mended in one place.

- Bytes are decoded incrementally, so a multibyte UTF-8 character split across two TCP reads
  (张三 arriving as 三) survives.
- A frame that never ends is bounded; a frame that does not parse is counted and skipped.
- An exception while pairing a response with its action fails that action only; in panoramisk it
  escapes into asyncio and drops the connection (e.g. Originate without an explicit Async).
- Actions pending when the connection drops fail with AmiDisconnected; panoramisk would queue them
  and replay them minutes later after a reconnect.
"""

import codecs
import logging
from typing import Any

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
        self._partial = ""
        self.garbled = 0

    def data_received(self, data: bytes) -> None:
        """Split the byte stream into AMI frames and hand each to `handle_message`."""
        text = self._partial + self._decoder.decode(data)
        if self.version is None and text.startswith("Asterisk Call Manager/"):
            line, _, text = text.partition(EOL)
            self.version = line.partition("/")[2].strip()
        frames = text.split(FRAME_END)
        self._partial = frames.pop()
        if len(self._partial) > MAX_FRAME_CHARS:
            logger.error("AMI frame exceeds %d characters without an end; dropped", MAX_FRAME_CHARS)
            self.garbled += 1
            self._partial = ""
        for frame in frames:
            # Asterisk sometimes ends a frame with a single EOL before the next one.
            frame = frame.strip()
            if not frame:
                continue
            try:
                message = Message.from_line(frame)
            except Exception:
                message = None
            if message is None:
                self.garbled += 1
                logger.warning("unparseable AMI frame skipped: %.200r", frame)
                continue
            try:
                self.handle_message(message)
            except Exception as exc:
                self.garbled += 1
                logger.exception("AMI frame could not be handled: %.200r", frame)
                self._fail_action_of(message, exc)

    def _fail_action_of(self, message: Message, exc: Exception) -> None:
        action = self.responses.pop(message.id, None) if message.id else None
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
