"""Kernel timestamps of one TCP port's packets on the loopback, for benchmarks.

A benchmark that reads when something happened from a peer's own report measures the peer's
reporting too: Asterisk stamps an AMI event when its manager thread turns the stasis message
into text, which under load is milliseconds after the step (bench.agi saw our next command on
the wire up to 35 ms before the AMI timestamp of the previous command's end). `Capture` asks
the kernel instead: a packet socket on `lo` with a BPF filter for one TCP port, kernel receive
timestamps (SO_TIMESTAMPNS) and a large buffer, read only after the measured burst, so the
capture takes no CPU from it. Linux only, and it needs CAP_NET_RAW (`Capture.open` raises
PermissionError without it).
"""

import ctypes
import socket
import struct
from collections import defaultdict
from dataclasses import dataclass

ETH_P_ALL = 0x0003
SO_ATTACH_FILTER = 26
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
BUFFER = 64 * 1024 * 1024
SNAP = 2048  # bytes kept of each packet: AGI lines are short


@dataclass(frozen=True, slots=True)
class Segment:
    """One TCP segment with a payload: when, from which port to which, and the payload."""

    at: float  # seconds since the epoch, from the kernel
    sport: int
    dport: int
    payload: bytes


def _port_filter(port: int) -> bytes:
    """A classic BPF program: IPv4 TCP to or from `port`, unfragmented; the sock_fprog's code."""
    ins = [
        (0x28, 0, 0, 12),  # ldh [12]: ethertype
        (0x15, 0, 10, 0x0800),  # IPv4, else drop
        (0x30, 0, 0, 23),  # ldb [23]: protocol
        (0x15, 0, 8, 6),  # TCP, else drop
        (0x28, 0, 0, 20),  # ldh [20]: flags and fragment offset
        (0x45, 6, 0, 0x1FFF),  # a fragment: drop
        (0xB1, 0, 0, 14),  # ldxb 4*([14]&0xf): the IP header's length
        (0x48, 0, 0, 14),  # ldh [x+14]: source port
        (0x15, 2, 0, port),  # ours: keep
        (0x48, 0, 0, 16),  # ldh [x+16]: destination port
        (0x15, 0, 1, port),  # ours: keep, else drop
        (0x06, 0, 0, SNAP),  # keep SNAP bytes
        (0x06, 0, 0, 0),  # drop
    ]
    return b"".join(struct.pack("HBBI", *i) for i in ins)


def parse(frame: bytes) -> tuple[int, int, bytes] | None:
    """Source port, destination port and payload of an Ethernet-framed IPv4 TCP packet."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:
        return None
    ihl = (frame[14] & 0x0F) * 4
    total = int.from_bytes(frame[16:18], "big")
    tcp = 14 + ihl
    if len(frame) < tcp + 20:
        return None
    sport, dport = struct.unpack_from("!HH", frame, tcp)
    offset = (frame[tcp + 12] >> 4) * 4
    return sport, dport, frame[tcp + offset : 14 + total]


class Capture:
    """Packets to or from one TCP port on the loopback, kernel-stamped, read after the fact."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._sock: socket.socket | None = None

    def open(self) -> None:
        """Start capturing (PermissionError without CAP_NET_RAW)."""
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            code = _port_filter(self.port)
            buf = ctypes.create_string_buffer(code, len(code))  # the kernel copies it
            prog = struct.pack("HL", len(code) // 8, ctypes.addressof(buf))
            sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, prog)
            try:
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, BUFFER)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.bind(("lo", ETH_P_ALL))
        except BaseException:
            sock.close()
            raise
        self._sock = sock

    def drain(self) -> list[Segment]:
        """Every segment with a payload captured so far, in capture order. On the loopback each
        packet is seen leaving and arriving: only the arriving copy is kept."""
        assert self._sock is not None, "open() first"
        out: list[Segment] = []
        self._sock.setblocking(False)
        while True:
            try:
                data, anc, _flags, addr = self._sock.recvmsg(SNAP, socket.CMSG_SPACE(16))
            except BlockingIOError:
                return out
            if addr[2] == socket.PACKET_OUTGOING:
                continue
            at = 0.0
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    at = sec + nsec / 1e9
            fields = parse(data)
            if fields is not None and fields[2]:
                out.append(Segment(at, *fields))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def open_capture(port: int, *, quiet: bool = False) -> Capture | None:
    """A running capture of `port`, or None where none can run (no CAP_NET_RAW, not Linux),
    saying why unless `quiet`: the benchmarks then leave their figures on the wire out."""
    capture = Capture(port)
    try:
        capture.open()
    except OSError as e:
        if not quiet:
            print(f"no packet capture ({e}): the figures on the wire are left out", flush=True)
        return None
    return capture


def can_capture() -> bool:
    """Whether a Capture can run here (CAP_NET_RAW, a Linux packet socket)."""
    capture = open_capture(0, quiet=True)
    if capture is None:
        return False
    capture.close()
    return True


def agi_steps(
    segments: list[Segment], port: int, commands: tuple[bytes, ...] = (b"",)
) -> tuple[list[float], list[float]]:
    """From the packets of a FastAGI server's `port`: per call (per Asterisk-side port), the
    seconds between consecutive commands leaving the server (a whole step, Asterisk's part and
    the server's), and the seconds from Asterisk's last reply to the next command (the server's
    part alone). Only commands starting with one of `commands` count (all by default); what
    Asterisk sends before the first one is the session's environment, not a reply."""
    calls: dict[int, list[Segment]] = defaultdict(list)
    for seg in segments:
        calls[seg.dport if seg.sport == port else seg.sport].append(seg)
    steps: list[float] = []
    turnarounds: list[float] = []
    for segs in calls.values():
        last_command = last_reply = None
        for seg in segs:
            if seg.sport == port and seg.payload.startswith(commands):
                if last_command is not None:
                    steps.append(seg.at - last_command)
                if last_reply is not None:
                    turnarounds.append(seg.at - last_reply)
                last_command, last_reply = seg.at, None
            elif seg.dport == port and last_command is not None:
                last_reply = seg.at
    return steps, turnarounds
