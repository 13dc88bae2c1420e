"""docker-compose.yml built and run as a site runs it (with podman and podman-compose here), then a
real SIP call through the composed Asterisk: SIPp on this host's loopback plays the carrier
(nothing is sent beyond 127.0.0.0/8), the desk is closed, the caller says nothing, the IVR speaks
(Asterisk opens the synthesised Mandarin prompts), the caller's silence is recorded as a
voicemail, which becomes an incident with its recording in the shared media volume, and the
call's journal row arrives in the composed PostgreSQL. Then `down` and `up`: the secrets made on
the first start, the signing key, the phones' passwords, the database, the recording and the
prompts are all still there.

Timings of each phase go to CTI_CACHE_DIR/compose/timings.log (the first run on a machine builds
everything; later ones reuse the cached base and images).
"""

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from cti.sandbox.instance import free_port, free_udp_port
from tests.compose.stack import (
    HERE,
    REPO,
    Stack,
    clean_old_images,
    compose_cache,
    ensure_base_images,
    free_subnet,
    free_udp_range,
    image_exists,
    podman,
    podman_env,
    postgres_tag,
    tree_hash,
)
from tests.support.sip import caller_scenario, rtp_pcap

pytestmark = [pytest.mark.compose, pytest.mark.slow, pytest.mark.timeout(3000)]

CALLER = ("13800138000", "张三")
SECRETS = ("ami-secret", "agi-secret", "postgres-password")
SERVICES = ("postgres", "asterisk", "cti")
RTP_PORTS = 20


def _http_ok(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return bool(r.status == 200 and json.load(r)["ok"])
    except OSError:
        return False


def _sdp_lines(log: Path) -> str:
    """The SDP connection and media lines SIPp sent and received: where RTP was to go."""
    if not log.exists():
        return "(no SIPp message log)"
    lines = log.read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if line.startswith(("c=", "m=", "a=rtcp")))


def keepalive_scenario(number: str, name: str, pcap: Path, hold_s: int) -> str:
    """tests.support.sip's caller scenario, with an in-dialog OPTIONS every 10 s while the
    caller waits for the desk's BYE, as a carrier behind NAT keeps its binding open: podman
    publishes the port through NAT, and a UDP flow that has been quiet for 30 s is forgotten
    there, so Asterisk's BYE would never come back to SIPp. Each OPTIONS is a transaction of its
    own (its own branch and CSeq)."""
    scenario = caller_scenario(number, name, pcap, hold_s)
    wait = f'  <recv request="BYE" timeout="{hold_s * 1000}"/>'
    assert wait in scenario
    loop = """  <label id="wait"/>
  <recv request="BYE" timeout="10000" ontimeout="keepalive" next="bye"/>
  <label id="keepalive"/>
  <send>
    <![CDATA[
      OPTIONS sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]-[cseq]
      From: "caller" <sip:NUMBER@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
      Call-ID: [call_id]
      CSeq: [cseq] OPTIONS
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" next="wait"/>
  <label id="bye"/>""".replace("NUMBER", number)
    return scenario.replace(wait, loop)


def _state(stack: Stack) -> dict[str, str]:
    """What must survive down/up, read from the running containers."""
    out = {name: stack.exec("cti", "cat", f"/run/cti-secrets/{name}") for name in SECRETS}
    out["secret.key"] = stack.exec("cti", "cat", "/var/lib/cti/data/secret.key")
    out["sip-passwords"] = stack.exec(
        "asterisk", "cat", "/var/lib/asterisk/cti-secrets/sip-passwords"
    )
    return out


def test_the_compose_stack_answers_a_sip_call_and_keeps_its_state_across_down_and_up(
    tmp_path: Path,
) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()

    def lap(name: str) -> None:
        timings[name] = round(time.monotonic() - started - sum(timings.values()), 1)

    base = ensure_base_images()
    lap("base image")
    tag = f"test-{tree_hash()}"
    # Only our settings reach the compose file (none of the developer's CTI_* or POSTGRES_*).
    env = {k: v for k, v in podman_env().items()
           if not k.startswith(("CTI_", "POSTGRES_"))}  # fmt: skip
    postgres_image = base.postgres
    if base.local:
        postgres_image = f"localhost/cti-desk/test-postgres:{postgres_tag(base.base)}"
        if not image_exists(postgres_image):
            podman("build", "-f", str(HERE / "postgres.Dockerfile"),
                   "--build-arg", f"BASE_IMAGE={base.base}", "-t", postgres_image, str(HERE),
                   timeout=1800)  # fmt: skip
    lap("postgres image")

    sipp_port = free_udp_port()
    sip_port = free_udp_port()
    http_port = free_port()
    rtp_start = free_udp_range(RTP_PORTS)
    subnet = free_subnet()
    gateway = subnet.rsplit(".", 1)[0] + ".1"
    # The proxy's CA this machine trusts, for pip inside the image build (public certificates).
    extra_ca = "\n".join(
        p.read_text() for p in sorted(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    )
    env.update(
        CTI_VERSION=tag,
        CTI_BASE_IMAGE=base.base,
        CTI_POSTGRES_IMAGE=postgres_image,
        CTI_EXTRA_CA_CERTS=extra_ca,
        CTI_SIP_ADDRESS="127.0.0.1",
        CTI_SIP_PORT=str(sip_port),
        CTI_RTP_START=str(rtp_start),
        CTI_RTP_END=str(rtp_start + RTP_PORTS - 1),
        CTI_HTTP_ADDRESS="127.0.0.1",
        CTI_HTTP_PUBLISHED_PORT=str(http_port),
        CTI_NETWORK_SUBNET=subnet,
        # SIPp on this host reaches the published port through podman's NAT, so Asterisk sees
        # its packets coming from the compose network's gateway: that is the carrier here.
        CTI_TRUNK_HOST=f"{gateway}:{sipp_port}",
        CTI_TRUNK_NAT="yes",
    )
    # The desk is closed (a voicemail), with the tests' hours file.
    override = tmp_path / "override.yml"
    override.write_text(
        "services:\n"
        "  cti:\n"
        "    environment:\n"
        "      CTI_CONFIG_DIR: /etc/cti\n"
        "    volumes:\n"
        f"      - {REPO / 'tests/fixtures/config/closed'}:/etc/cti:ro\n"
    )
    project = f"ctitest{os.getpid()}"
    stack = Stack(project, tmp_path, env, [REPO / "docker-compose.yml", override])
    built = image_exists(f"localhost/cti-desk/cti:{tag}") and image_exists(
        f"localhost/cti-desk/asterisk:{tag}"
    )
    if not built:
        # init runs the cti image: building it too would build the same image twice at once.
        stack.compose("build", "cti", "asterisk", timeout=3000)
    lap("build" if not built else "build (cached images)")
    clean_old_images(tag, postgres_image.rpartition(":")[2])
    try:
        stack.compose("up", "-d")
        stack.wait_healthy(SERVICES, timeout=600)
        deadline = time.monotonic() + 120
        while not _http_ok(http_port):
            assert time.monotonic() < deadline, stack.logs("cti")[-4000:]
            time.sleep(1)
        lap("first start")

        # Secrets made on the first start: random, readable by root alone, the same in every
        # container (the CTI server is logged in to AMI: /healthz is ok).
        first = _state(stack)
        for name in SECRETS:
            assert len(first[name]) >= 24 and not first[name].startswith("change-me"), name
            assert (
                stack.exec("cti", "stat", "-c", "%a", f"/run/cti-secrets/{name}").strip() == "600"
            )
        assert len(first["secret.key"].strip()) >= 32
        assert "change-me" not in stack.exec("asterisk", "cat", "/etc/asterisk/manager.conf")
        # Published on loopback only.
        for service in ("asterisk", "cti"):
            ports = podman("port", stack.container(service)).stdout.split()
            hosts = [p for p in ports if ":" in p and not p.endswith(":")]
            assert hosts and all(p.startswith("127.0.0.1:") for p in hosts), ports
        # The prompts the CTI server synthesised are where Asterisk plays them from.
        digits = stack.exec("asterisk", "ls", "/usr/share/asterisk/sounds/zh/digits/").split()
        assert {f"{d}.wav" for d in "0123456789"} <= set(digits), digits
        stack.exec("asterisk", "test", "-s", "/usr/share/asterisk/sounds/zh/cti/welcome.wav")
        # Asterisk's RTP range is the published one.
        rtp_conf = stack.exec("asterisk", "cat", "/etc/asterisk/rtp.conf")
        assert f"rtpstart = {rtp_start}" in rtp_conf and f"rtpend = {rtp_start + 19}" in rtp_conf
        # Log what Asterisk plays (verbose 3: "Playing 'cti/welcome.wav' (language 'zh')").
        stack.exec(
            "asterisk",
            "asterisk",
            "-rx",
            "logger add channel compose-test.log verbose(3),notice,warning,error",
        )

        # The call: SIPp as the carrier, on 127.0.0.1 only, says nothing (PCMA silence).
        pcap = rtp_pcap(tmp_path / "caller.pcap", [], 180)
        (tmp_path / "scenario.xml").write_text(keepalive_scenario(*CALLER, pcap, 240))
        sipp = subprocess.run(
            ["sipp", f"127.0.0.1:{sip_port}", "-sf", str(tmp_path / "scenario.xml"), "-s", "8000",
             "-i", "127.0.0.1", "-p", str(sipp_port), "-mi", "127.0.0.1",
             "-mp", str(free_udp_port()), "-m", "1", "-l", "1", "-nostdin", "-base_cseq", "100",
             "-trace_err", "-error_file", str(tmp_path / "sipp-errors.log"),
             "-trace_msg", "-message_file", str(tmp_path / "sipp-messages.log")],
            cwd=tmp_path, capture_output=True, text=True, timeout=360, check=False,
        )  # fmt: skip
        played = stack.exec("asterisk", "cat", "/var/log/asterisk/compose-test.log", check=False)
        assert sipp.returncode == 0, (
            f"{sipp.stdout[-2000:]}\n{sipp.stderr[-2000:]}\n{played[-3000:]}\n"
            f"{stack.logs('cti')[-3000:]}"
        )
        lap("call")
        # The IVR spoke: Asterisk opened the Mandarin prompts and read the digits.
        assert "Playing 'cti/welcome" in played and "(language 'zh')" in played, played[-3000:]
        assert "Playing 'cti/voicemail_intro" in played, played[-3000:]
        # The number read back: the voicemail was recorded (the caller's RTP reached Asterisk).
        assert "Playing 'digits/" in played, (
            f"{played[-3000:]}\nrecordings: "
            f"{stack.exec('cti', 'ls', '-l', '/var/lib/cti/media/recordings', check=False)}\n"
            f"{_sdp_lines(tmp_path / 'sipp-messages.log')}"
        )

        # The journal row in the composed PostgreSQL, and the incident with its recording.
        deadline = time.monotonic() + 60
        while not (rows := stack.psql(
            "SELECT uniqueid, outcome, incident_number, queued_at IS NULL FROM calls "
            f"WHERE caller_number = '{CALLER[0]}' AND ended_at IS NOT NULL"
        )):  # fmt: skip
            assert time.monotonic() < deadline, stack.logs("cti")[-4000:]
            time.sleep(1)
        ((uniqueid, outcome, number, not_queued),) = rows
        assert outcome == "voicemail" and number and not_queued == "t", rows
        ((channel, recording, call_uid),) = stack.psql(
            f"SELECT channel, recording, call_uniqueid FROM incidents WHERE number = '{number}'"
        )
        assert (
            channel == "voicemail" and call_uid == uniqueid and recording.startswith("recordings/")
        )
        size = stack.exec("cti", "stat", "-c", "%s", f"/var/lib/cti/media/{recording}")
        assert int(size) > 1000  # seconds of 8 kHz audio, written by Asterisk, read by the server
        assert stack.exec("cti", "head", "-c", "4", f"/var/lib/cti/media/{recording}") == "RIFF"
        steps = stack.psql(f"SELECT count(*) FROM ivr_steps WHERE call_uniqueid = '{uniqueid}'")
        assert int(steps[0][0]) > 0
        lap("checks")

        # The upgrade notes' backup (the server running), and the rollback's restore (the server
        # stopped, `run` through the entrypoint): what changed after the backup is undone.
        backup = "/var/lib/cti/data/backup-test.tar.gz"
        stack.exec("cti", "cti-entrypoint", "cti", "backup", backup)
        ((category,),) = stack.psql(f"SELECT category FROM incidents WHERE number = '{number}'")
        stack.psql(f"UPDATE incidents SET category = 'after the backup' WHERE number = '{number}'")
        stack.compose("stop", "cti")
        stack.compose("run", "--rm", "cti", "cti", "restore", backup, "--force")
        stack.compose("start", "cti")
        lap("backup/restore")

        # down / up: everything that must survive does.
        stack.compose("down")
        stack.compose("up", "-d")
        stack.wait_healthy(SERVICES, timeout=600)
        deadline = time.monotonic() + 120
        while not _http_ok(http_port):
            assert time.monotonic() < deadline, stack.logs("cti")[-4000:]
            time.sleep(1)
        assert _state(stack) == first
        assert stack.psql(f"SELECT outcome FROM calls WHERE uniqueid = '{uniqueid}'") == [
            ["voicemail"]
        ]
        assert stack.psql(
            f"SELECT recording, category FROM incidents WHERE number = '{number}'"
        ) == [[recording, category]]
        assert int(stack.exec("cti", "stat", "-c", "%s", f"/var/lib/cti/media/{recording}")) == int(
            size
        )
        # The prompts were kept, not synthesised again; migrations found nothing to do.
        assert "0 prompt files written" in stack.logs("cti")
        lap("down/up")
    finally:
        logs = "\n".join(f"--- {s}\n{stack.logs(s)[-20000:]}" for s in SERVICES)
        (tmp_path / "containers.log").write_text(logs)
        try:
            stack.compose("down", "-v", timeout=300)
        finally:
            podman("network", "rm", "-f", f"{project}_default", check=False)
        total = round(time.monotonic() - started, 1)
        with (compose_cache() / "timings.log").open("a") as fh:
            fh.write(json.dumps({"at": time.strftime("%FT%TZ", time.gmtime()), "tag": tag,
                                 "made": base.made, "phases": timings, "total": total}) + "\n")  # fmt: skip
        print(f"compose test: {timings} total {total} s")
