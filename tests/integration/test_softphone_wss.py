"""Asterisk's WSS listener for the softphones, as a client and an attacker see it: the sandbox's
certificate verifies against the sandbox CA for 127.0.0.1, the WebSocket speaks SIP, and a
REGISTER is accepted with the agent's own derived password only (not another agent's, not none)."""

import hashlib
import secrets
import ssl

import aiohttp
import pytest

from cti import softphone
from cti.sandbox.instance import InstanceState

pytestmark = pytest.mark.asterisk


def _md5(text: str) -> str:
    # SIP digest authentication (RFC 3261, as Asterisk offers it) is MD5.
    return hashlib.md5(text.encode()).hexdigest()


def _register(ext: str, cseq: int, call_id: str, auth: str = "") -> str:
    uri = "sip:127.0.0.1"
    return (
        f"REGISTER {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/WSS test.invalid;branch=z9hG4bK{secrets.token_hex(6)}\r\n"
        "Max-Forwards: 70\r\n"
        f"To: <sip:{ext}@127.0.0.1>\r\nFrom: <sip:{ext}@127.0.0.1>;tag={secrets.token_hex(4)}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: {cseq} REGISTER\r\n"
        f"Contact: <sip:{ext}@test.invalid;transport=ws>;expires=60\r\nExpires: 60\r\n"
        f"{auth}Content-Length: 0\r\n\r\n"
    )


def _digest(challenge: str, ext: str, password: str) -> str:
    fields = dict(
        part.strip().split("=", 1) for part in challenge.split(" ", 1)[1].split(",") if "=" in part
    )
    realm, nonce = fields["realm"].strip('"'), fields["nonce"].strip('"')
    ha1 = _md5(f"{ext}:{realm}:{password}")
    ha2 = _md5("REGISTER:sip:127.0.0.1")
    cnonce, nc = secrets.token_hex(4), "00000001"
    qop = "auth" if "qop" in fields else ""
    resp = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}" if qop else f"{ha1}:{nonce}:{ha2}")
    extra = f', qop=auth, nc={nc}, cnonce="{cnonce}"' if qop else ""
    return (
        f'Authorization: Digest username="{ext}", realm="{realm}", nonce="{nonce}", '
        f'uri="sip:127.0.0.1", response="{resp}", algorithm=MD5{extra}\r\n'
    )


async def _try(st: InstanceState, ext: str, password: str) -> int:
    """REGISTER `ext` with `password` over WSS; the final status code."""
    tls = ssl.create_default_context(cafile=st.ca_cert)  # verifies chain and 127.0.0.1
    async with (
        aiohttp.ClientSession() as http,
        http.ws_connect(f"wss://127.0.0.1:{st.wss_port}/ws", protocols=("sip",), ssl=tls) as ws,
    ):
        assert ws.protocol == "sip"
        call_id = secrets.token_hex(8)
        await ws.send_str(_register(ext, 1, call_id))
        first = await ws.receive_str(timeout=10)
        assert first.startswith("SIP/2.0 401"), first
        challenge = next(
            line.split(":", 1)[1].strip()
            for line in first.split("\r\n")
            if line.lower().startswith("www-authenticate:")
        )
        await ws.send_str(_register(ext, 2, call_id, _digest(challenge, ext, password)))
        while True:
            answer = await ws.receive_str(timeout=10)
            if not answer.startswith("SIP/2.0 "):
                continue  # a request of Asterisk's (its OPTIONS qualifying the new contact)
            code = int(answer.split(" ", 2)[1])
            if code >= 200:
                return code


async def test_wss_verifies_against_the_sandbox_ca_and_needs_the_agents_own_password(
    sandbox_state: InstanceState,
) -> None:
    st = sandbox_state
    # Without the CA the certificate is not trusted.
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        async with aiohttp.ClientSession() as http:
            await http.ws_connect(f"wss://127.0.0.1:{st.wss_port}/ws", protocols=("sip",))
    assert await _try(st, "1003", softphone.password(st.softphone_key, "1003")) == 200
    # Another agent's password, a guess, or a password from another key: refused.
    assert await _try(st, "1003", softphone.password(st.softphone_key, "1004")) in (401, 403)
    assert await _try(st, "1003", "change-me-webrtc-1003") in (401, 403)
    assert await _try(st, "1004", softphone.password("x" * 40, "1004")) in (401, 403)
