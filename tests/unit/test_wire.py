"""bench.wire's capture on the real loopback, and bench.agi's reading of what it captured."""

import socket
import time

import pytest

from bench.agi import wire_gaps
from bench.wire import Capture, Segment, agi_steps, parse


def _pair(listener: socket.socket) -> tuple[socket.socket, socket.socket]:
    client = socket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    return client, server


def test_capture_keeps_one_port_once_with_kernel_times() -> None:
    with (
        socket.create_server(("127.0.0.1", 0)) as ours,
        socket.create_server(("127.0.0.1", 0)) as other,
    ):
        port = ours.getsockname()[1]
        capture = Capture(port)
        try:
            capture.open()
        except PermissionError:
            pytest.skip("no CAP_NET_RAW here: bench.agi leaves the wire rows out")
        try:
            asterisk, server = _pair(ours)
            noise_a, noise_b = _pair(other)
            before = time.time()
            for n in range(3):
                server.sendall(f'SET VARIABLE "X" "{n}"\n'.encode())
                asterisk.recv(100)
                noise_a.sendall(b"not ours\n")  # another port: filtered out in the kernel
                noise_b.recv(100)
                time.sleep(0.005)
                asterisk.sendall(b"200 result=1\n")
                server.recv(100)
            after = time.time()
            segments = capture.drain()
        finally:
            capture.close()
            for s in (asterisk, server, noise_a, noise_b):
                s.close()
    payloads = [s.payload for s in segments]
    # Each packet once (the loopback shows it leaving and arriving), only our port's.
    assert payloads == [
        p for n in range(3) for p in (f'SET VARIABLE "X" "{n}"\n'.encode(), b"200 result=1\n")
    ]
    assert all(port in (s.sport, s.dport) for s in segments)
    times = [s.at for s in segments]
    assert times == sorted(times) and before <= times[0] and times[-1] <= after
    steps, ours_part = wire_gaps(segments, port)
    assert len(steps) == 2 and all(s >= 0.005 for s in steps)  # each step slept 5 ms
    # Our part of a step: from the result to the next command, without the 5 ms Asterisk slept.
    assert len(ours_part) == 2 and all(
        0 <= o < s - 0.005 + 1e-4 for o, s in zip(ours_part, steps, strict=True)
    )


def test_wire_gaps_per_call() -> None:
    port = 4573

    def seg(at: float, to_asterisk: bool, payload: bytes, call: int = 40000) -> Segment:
        return Segment(at, *((port, call) if to_asterisk else (call, port)), payload)

    segments = [
        seg(0.0, False, b"agi_network: yes\n"),
        seg(0.1, True, b'SET VARIABLE "X" "1"\n'),
        seg(0.1, True, b'SET VARIABLE "X" "1"\n', call=40001),  # another call, interleaved
        seg(0.2, False, b"200 result=1\n"),
        seg(0.25, True, b'SET VARIABLE "X" "2"\n'),
        seg(0.3, False, b"200 result=1\n", call=40001),
        seg(0.7, True, b'SET VARIABLE "X" "2"\n', call=40001),
        seg(0.8, False, b"200 result=1\n"),  # the last result: no step follows it
    ]
    steps, ours = wire_gaps(segments, port)
    assert sorted(round(s, 3) for s in steps) == [0.15, 0.6]
    assert sorted(round(s, 3) for s in ours) == [0.05, 0.4]


def test_parse_refuses_what_is_not_ipv4_tcp() -> None:
    assert parse(b"") is None
    assert parse(b"\x00" * 12 + b"\x86\xdd" + b"\x00" * 60) is None  # IPv6
    frame = bytearray(b"\x00" * 12 + b"\x08\x00" + b"\x45" + b"\x00" * 60)
    frame[23] = 17  # UDP
    assert parse(bytes(frame)) is None


def test_agi_steps_counts_every_command_and_the_last_reply() -> None:
    port = 4573

    def seg(at: float, to_asterisk: bool, payload: bytes) -> Segment:
        return Segment(at, *((port, 40000) if to_asterisk else (40000, port)), payload)

    segments = [
        seg(0.0, False, b"agi_request: agi://127.0.0.1/ivr\n"),  # the environment: no reply
        seg(0.5, True, b'STREAM FILE "welcome" "12"\n'),
        seg(2.5, False, b"200 result=0 endpos=16000\n"),
        seg(2.6, True, b'GET DATA "menu" 5000 1\n'),
        seg(4.0, False, b"HANGUP\n"),  # unsolicited, then the reply
        seg(4.1, False, b"200 result=-1\n"),
        seg(4.3, True, b"HANGUP\n"),
    ]
    steps, turnarounds = agi_steps(segments, port)
    assert [round(s, 3) for s in steps] == [2.1, 1.7]
    assert [round(t, 3) for t in turnarounds] == [0.1, 0.2]
    # Only the commands asked for: the steps run from one of them to the next.
    steps, turnarounds = agi_steps(segments, port, (b"STREAM FILE", b"HANGUP"))
    assert [round(s, 3) for s in steps] == [3.8] and [round(t, 3) for t in turnarounds] == [0.2]
