"""Feed a captured AMI byte stream through the real protocol, client dispatch and tracker."""

import gzip
import random
from pathlib import Path
from typing import Any

from cti.ami.client import AmiClient, AmiOptions
from cti.ami.protocol import CtiAmiProtocol
from cti.live.bus import Bus
from cti.live.tracker import CallTracker

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "ami"


def load(name: str) -> bytes:
    """The raw bytes of a captured session."""
    with gzip.open(FIXTURES / f"{name}.raw.gz", "rb") as fh:
        return fh.read()


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass


def protocol_for(factory: Any) -> CtiAmiProtocol:
    """A CtiAmiProtocol wired to `factory` (no socket)."""
    proto = CtiAmiProtocol()
    proto.connection_made(_Transport())
    proto.factory = factory
    return proto


def replay(
    raw: bytes, *, chunk: int | None = None, seed: int = 0, bus: Bus | None = None
) -> tuple[CallTracker, AmiClient]:
    """Replay `raw` in chunks (random sizes up to `chunk`, or 64 KiB) into a fresh tracker."""
    client = AmiClient(AmiOptions("127.0.0.1", 0, "cti", "x", queue_size=1_000_000))
    tracker = CallTracker(["cti-inbound"], bus)
    proto = protocol_for(client)
    rng = random.Random(seed)
    i = 0
    while i < len(raw):
        n = rng.randint(1, chunk) if chunk else 65536
        proto.data_received(raw[i : i + n])
        i += n
        while not client.events.empty():
            tracker.handle(client.events.get_nowait())
    return tracker, client
