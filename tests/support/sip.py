"""Real SIP peers for the SIP tier: baresip as an agent's desk phone (registered to the sandbox
with the password the deployed pjsip.conf got, driven over baresip's ctrl_tcp socket) and SIPp
as the carrier (bound to the trunk's loopback address, so the sandbox's `identify` takes its
INVITE for the carrier's). Every packet stays on 127.0.0.0/8."""

import asyncio
import contextlib
import json
import shutil
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cti.sandbox import Instance
from cti.sandbox.instance import InstanceState, free_port, free_udp_port


def _free_pair() -> int:
    """A port p with p and p+1 free for TCP and UDP (baresip also binds p+1 for SIP over TLS)."""
    for _ in range(50):
        p = free_port()
        try:
            for port in (p, p + 1):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as s:
                        s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return p
    raise RuntimeError("no free pair of ports")


@dataclass
class PhoneEvent:
    """A ctrl_tcp event (`type` is CALL_INCOMING, CALL_ESTABLISHED, CALL_CLOSED, REGISTER_OK…)."""

    type: str
    param: str
    raw: dict[str, Any]


@dataclass
class Phone:
    """baresip registered as one agent's desk phone, auto-answering."""

    ext: str
    folder: Path
    proc: asyncio.subprocess.Process | None = None
    events: list[PhoneEvent] = field(default_factory=list)
    _reader: asyncio.StreamReader | None = None
    _writer: asyncio.StreamWriter | None = None
    _task: asyncio.Task[None] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)
    _responses: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)

    async def start(self, st: InstanceState, password: str, *, answer: str = "auto") -> None:
        """Start baresip and wait until Asterisk accepted its registration."""
        self.folder.mkdir(parents=True, exist_ok=True)
        sip, ctrl = _free_pair(), _free_pair()
        rtp = free_udp_port()
        (self.folder / "config").write_text(
            "\n".join(
                [
                    "poll_method epoll",
                    f"sip_listen 127.0.0.1:{sip}",
                    "sip_trans_def udp",
                    "net_interface 127.0.0.1",
                    # Nothing listens there: the phone never asks a DNS server off this host.
                    "dns_server 127.0.0.1:53",
                    # No sound card: what the agent hears goes back to the caller (an echo, so RTP flows both ways).
                    "audio_source aubridge,x",
                    "audio_player aubridge,x",
                    "audio_alert aubridge,x",
                    f"rtp_ports {rtp}-{rtp + 40}",
                    "module_path /usr/lib/baresip/modules",
                    "module g711.so",
                    "module ausine.so",
                    "module aubridge.so",
                    "module account.so",
                    "module menu.so",
                    "module ctrl_tcp.so",
                    f"ctrl_tcp_listen 127.0.0.1:{ctrl}",
                    "",
                ]
            )
        )
        (self.folder / "accounts").write_text(
            f"<sip:{self.ext}@127.0.0.1:{st.sip_port};transport=udp>;auth_pass={password}"
            f";answermode={answer};regint=300;audio_codecs=PCMA,PCMU\n"
        )
        log = (self.folder / "baresip.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            shutil.which("baresip") or "baresip", "-f", str(self.folder),
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        for _ in range(100):
            try:
                self._reader, self._writer = await asyncio.open_connection("127.0.0.1", ctrl)
                break
            except OSError:
                await asyncio.sleep(0.1)
        else:
            raise RuntimeError(f"baresip {self.ext}: no ctrl_tcp ({self.folder}/baresip.log)")
        self._task = asyncio.create_task(self._read())
        # The registration may be done before the socket opened (no event then): ask.
        for _ in range(100):
            if "OK" in (await self.command("reginfo")).get("data", ""):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"baresip {self.ext} did not register ({self.folder}/baresip.log)")

    async def _read(self) -> None:
        assert self._reader is not None
        while True:
            try:
                size = await self._reader.readuntil(b":")
                body = await self._reader.readexactly(int(size[:-1]) + 1)
            except (asyncio.IncompleteReadError, ConnectionError, ValueError):
                return
            msg = json.loads(body[:-1])
            if msg.get("response"):
                await self._responses.put(msg)
            elif msg.get("event"):
                self.events.append(PhoneEvent(msg.get("type", ""), msg.get("param", ""), msg))
                self._changed.set()

    async def command(self, command: str, params: str = "") -> dict[str, Any]:
        """Run a baresip command (`hangup`, `hold`, `resume`, `transfer`, `dial` …)."""
        assert self._writer is not None
        data = json.dumps({"command": command, "params": params, "token": command}).encode()
        self._writer.write(b"%d:%s," % (len(data), data))
        await self._writer.drain()
        return await asyncio.wait_for(self._responses.get(), 10)

    def count(self, type_: str) -> int:
        """How many events of this type the phone has seen."""
        return sum(1 for e in self.events if e.type == type_)

    async def wait_for(self, type_: str, *, n: int = 1, timeout: float = 60) -> PhoneEvent:
        """Wait for the n-th event of this type since the phone started."""
        try:
            async with asyncio.timeout(timeout):
                while self.count(type_) < n:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            seen = [(e.type, e.param) for e in self.events]
            raise AssertionError(f"phone {self.ext}: no {type_} #{n}; saw {seen}") from None
        return [e for e in self.events if e.type == type_][n - 1]

    async def stop(self) -> None:
        """Quit baresip (it unregisters on the way out)."""
        if self._writer is not None:
            self._writer.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


@asynccontextmanager
async def phones(
    sandbox: Instance, st: InstanceState, folder: Path, *exts: str, answer: str = "auto"
) -> AsyncIterator[dict[str, Phone]]:
    """Registered desk phones for these extensions until the block ends."""
    started: dict[str, Phone] = {}
    try:
        for ext in exts:
            phone = Phone(ext, folder / f"phone-{ext}")
            started[ext] = phone
            await phone.start(st, sandbox.sip_password(ext), answer=answer)
        yield started
    finally:
        for phone in started.values():
            await phone.stop()


def rtp_pcap(path: Path, keys: list[tuple[float, str]], seconds: float) -> Path:
    """Write the caller's RTP as a pcap for SIPp's play_pcap_audio: PCMA silence every 20 ms for
    `seconds`, with RFC 2833 events for `keys` ((seconds from the start, key)) in the stream.

    SIPp's own dtmf_2833_<d>.pcap files cannot be replayed: every replay has the same sequence
    numbers and timestamp, so Asterisk takes the second "1" for a retransmission of the first.
    """
    events = {"*": 10, "#": 11, **{d: int(d) for d in "0123456789"}}
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    seq, ts, ssrc = 1000, 8000, 0x5EED1234
    pending = sorted(keys)
    t = 0.0

    def packet(at: float, pt: int, marker: bool, timestamp: int, payload: bytes) -> None:
        nonlocal seq
        rtp = struct.pack(">BBHII", 0x80, pt | (0x80 if marker else 0), seq & 0xFFFF,
                          timestamp & 0xFFFFFFFF, ssrc) + payload  # fmt: skip
        seq += 1
        udp = struct.pack(">HHHH", 6000, 6000, 8 + len(rtp), 0) + rtp
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0,
                         bytes([127, 0, 0, 2]), bytes([127, 0, 0, 1])) + udp  # fmt: skip
        frame = b"\x00" * 12 + b"\x08\x00" + ip
        sec = int(at)
        out.extend(struct.pack("<IIII", sec, int((at - sec) * 1e6), len(frame), len(frame)))
        out.extend(frame)

    while t < seconds:
        if pending and pending[0][0] <= t:
            _, key = pending.pop(0)
            start = ts
            for i in range(8):  # 160 ms of the key, then its end three times
                packet(
                    t,
                    101,
                    i == 0,
                    start,
                    bytes([events[key], 10]) + struct.pack(">H", 160 * (i + 1)),
                )
                t += 0.02
                ts += 160
            for _ in range(3):
                packet(
                    t,
                    101,
                    False,
                    start,
                    bytes([events[key], 0x80 | 10]) + struct.pack(">H", 160 * 8),
                )
            continue
        packet(t, 8, False, ts, b"\xd5" * 160)
        t += 0.02
        ts += 160
    path.write_bytes(bytes(out))
    return path


def caller_scenario(number: str, name: str, pcap: Path, hold_s: int) -> str:
    """A SIPp UAC scenario: the carrier delivers a call from `number`, plays the caller's RTP
    (`pcap`, from rtp_pcap: DTMF over RTP) and waits up to `hold_s` for the desk's BYE."""
    body = f'  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>'
    return f"""<?xml version="1.0" encoding="UTF-8" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="carrier call">
  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "{name}" <sip:{number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: sip:{number}@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=carrier 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[media_ip_type] [media_ip]
      t=0 0
      m=audio [media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
      a=sendrecv
    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "{name}" <sip:{number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: sip:{number}@[local_ip]:[local_port]
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
{body}
  <recv request="BYE" timeout="{hold_s * 1000}"/>
  <send>
    <![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0
    ]]>
  </send>
</scenario>
"""


@dataclass
class SippRun:
    """A finished (or running) SIPp process and where its files are."""

    proc: asyncio.subprocess.Process
    folder: Path

    async def wait(self, timeout: float = 300) -> int:
        """SIPp's exit status (0: every call succeeded)."""
        return await asyncio.wait_for(self.proc.wait(), timeout)

    def log(self) -> str:
        """SIPp's error log and screen, for assertion messages."""
        out = []
        for p in sorted(self.folder.glob("*")):
            if p.suffix in (".log", ".txt"):
                out.append(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}")
        return "\n".join(out)


async def carrier_call(
    st: InstanceState,
    folder: Path,
    scenario: str,
    *,
    did: str = "8000",
    calls: int = 1,
    rate: float = 1,
    limit: int | None = None,
) -> SippRun:
    """Start SIPp as the carrier: `calls` calls to `did` over the sandbox's trunk."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "scenario.xml").write_text(scenario)
    args = [
        f"127.0.0.1:{st.sip_port}", "-sf", str(folder / "scenario.xml"), "-s", did,
        "-i", st.carrier_host, "-p", str(st.carrier_port),
        "-mi", st.carrier_host, "-mp", str(free_udp_port(st.carrier_host)),
        "-m", str(calls), "-r", str(rate), "-l", str(limit or calls),
        "-bg", "-trace_err", "-error_file", str(folder / "errors.log"),
        "-trace_screen", "-screen_file", str(folder / "screen.txt"), "-nostdin",
    ]  # fmt: skip
    args.remove("-bg")  # in the foreground, so the test can wait for it
    proc = await asyncio.create_subprocess_exec(
        shutil.which("sipp") or "sipp", *args, cwd=folder,
        stdin=asyncio.subprocess.DEVNULL, stdout=(folder / "stdout.txt").open("wb"),
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    return SippRun(proc, folder)
