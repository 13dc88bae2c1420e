"""AMI actions by intent, with typed arguments and results: the only place outside the client that
spells AMI action and header names.

Each function sends one action under the client's timeout and maps Asterisk's answer: a refusal
raises AmiActionFailed (with Asterisk's message), a dropped link AmiDisconnected, silence
AmiTimeout. Nothing here retries: an action that could not be carried out is reported, not
replayed later.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from cti.ami import responses
from cti.ami.client import AmiClient
from cti.ami.responses import AuthList, CoreShowChannel, QueueStatus
from cti.errors import AmiActionFailed, InvalidInput

# The characters that would break a header of an Originate (a caller ID name, a variable value).
_UNSAFE_IN_HEADER = frozenset('\r\n"<>;')


@dataclass(frozen=True)
class Originate:
    """A call the desk places: `channel` is rung first; when it answers it runs
    `context`/`exten`/`priority` (or `application`(`data`))."""

    channel: str
    context: str = ""
    exten: str = "s"
    priority: int = 1
    application: str = ""
    data: str = ""
    caller_id: str = ""  # '"Name" <number>' or '<number>'
    timeout_ms: int = 30_000
    variables: Mapping[str, str] = field(default_factory=dict)
    channel_id: str = ""  # the Uniqueid the new channel gets (and its ;2 half's)
    other_channel_id: str = ""

    def headers(self) -> dict[str, str | list[str]]:
        """The Originate action's headers (always asynchronous: see ASTERISK-NOTES)."""
        h: dict[str, str | list[str]] = {"Channel": self.channel, "Async": "true"}
        if self.application:
            h.update(Application=self.application, Data=self.data)
        else:
            h.update(Context=self.context, Exten=self.exten, Priority=str(self.priority))
        if self.caller_id:
            h["CallerID"] = self.caller_id
        if self.timeout_ms:
            h["Timeout"] = str(self.timeout_ms)
        if self.channel_id:
            h["ChannelId"] = self.channel_id
        if self.other_channel_id:
            h["OtherChannelId"] = self.other_channel_id
        if self.variables:
            # One header per variable: a value may contain a comma.
            h["Variable"] = [f"{k}={v}" for k, v in self.variables.items()]
        return h


def caller_id(name: str, number: str) -> str:
    """A CallerID header value; characters that would break it are left out of the name."""
    shown = "".join(ch for ch in name if ch not in _UNSAFE_IN_HEADER).strip()
    num = "".join(ch for ch in number if ch not in _UNSAFE_IN_HEADER)
    return f'"{shown}" <{num}>' if shown else f"<{num}>"


async def originate(client: AmiClient, call: Originate, *, timeout: float | None = None) -> None:
    """Place a call (Asterisk queues it; the outcome arrives as an OriginateResponse event)."""
    for key, value in call.variables.items():
        if not key.replace("_", "").isalnum() or any(ch in value for ch in "\r\n"):
            raise InvalidInput(f"Originate variable {key!r} is not a safe name=value")
    await client.request("Originate", call.headers(), timeout=timeout)


async def queue_add(
    client: AmiClient, queue: str, interface: str, member_name: str, *, paused: bool = False
) -> bool:
    """Add a member to a queue; False if it was a member already."""
    try:
        await client.action(
            "QueueAdd",
            Queue=queue,
            Interface=interface,
            MemberName=member_name,
            Paused="true" if paused else "false",
        )
    except AmiActionFailed as exc:
        if "already" in str(exc).lower():
            return False
        raise
    return True


async def queue_remove(client: AmiClient, queue: str, interface: str) -> bool:
    """Remove a member from a queue; False if it was not a member."""
    try:
        await client.action("QueueRemove", Queue=queue, Interface=interface)
    except AmiActionFailed as exc:
        if "not there" in str(exc).lower():
            return False
        raise
    return True


async def queue_pause(
    client: AmiClient, interface: str, paused: bool, reason: str = "", queue: str = ""
) -> None:
    """Pause (with a reason) or unpause a member, in one queue or in all of its queues."""
    headers: dict[str, str] = {"Interface": interface, "Paused": "true" if paused else "false"}
    if queue:
        headers["Queue"] = queue
    if paused and reason:
        headers["Reason"] = reason
    await client.request("QueuePause", headers)


async def queue_status(
    client: AmiClient, *, queue: str = "", member: str = "", timeout: float = 30
) -> QueueStatus:
    """Memberships and waiting callers, of every queue or one, of every member or one."""
    headers: dict[str, str] = {}
    if queue:
        headers["Queue"] = queue
    if member:
        headers["Member"] = member
    rows = await client.action("QueueStatus", as_list=True, timeout=timeout, **headers)
    return responses.queue_status(rows)


async def core_show_channels(client: AmiClient, *, timeout: float = 30) -> list[CoreShowChannel]:
    """Every live channel."""
    rows = await client.action("CoreShowChannels", as_list=True, timeout=timeout)
    return responses.core_show_channels(rows)


async def withdraw_caller(client: AmiClient, queue: str, channel: str, info: str) -> None:
    """Take a waiting caller out of Queue(); the dialplan reads `info` as QUEUE_WITHDRAW_INFO."""
    await client.action("QueueWithdrawCaller", Queue=queue, Caller=channel, WithdrawInfo=info)


async def redirect(
    client: AmiClient,
    channel: str,
    context: str,
    exten: str,
    priority: int = 1,
    *,
    extra_channel: str = "",
) -> None:
    """Send a channel (and, with `extra_channel`, its peer) to a dialplan location."""
    headers = {"Channel": channel, "Context": context, "Exten": exten, "Priority": str(priority)}
    if extra_channel:
        headers.update(
            ExtraChannel=extra_channel,
            ExtraContext=context,
            ExtraExten=exten,
            ExtraPriority=str(priority),
        )
    await client.request("Redirect", headers)


async def hangup(client: AmiClient, channel: str, cause: int | None = None) -> None:
    """Hang a channel up."""
    headers = {"Channel": channel}
    if cause is not None:
        headers["Cause"] = str(cause)
    await client.request("Hangup", headers)


async def set_var(client: AmiClient, channel: str, name: str, value: str) -> None:
    """Set a variable on one channel."""
    if not name.replace("_", "").isalnum() or any(ch in value for ch in "\r\n"):
        raise InvalidInput(f"{name!r} is not a safe name=value")
    await client.action("Setvar", Channel=channel, Variable=name, Value=value)


async def blind_transfer(client: AmiClient, channel: str, context: str, exten: str) -> None:
    """Blind-transfer the party bridged with `channel` (an agent's leg) to context/exten."""
    await client.action("BlindTransfer", Channel=channel, Context=context, Exten=exten)


async def attended_transfer(client: AmiClient, channel: str, context: str, exten: str) -> None:
    """Attended transfer from `channel` (an agent's leg): it dials context/exten while its peer
    waits; hanging `channel` up then joins the peer to whoever answered."""
    await client.action("Atxfer", Channel=channel, Context=context, Exten=exten)


async def cancel_attended_transfer(client: AmiClient, channel: str) -> None:
    """Cancel the attended transfer `channel` (the agent's leg) started: back to its peer."""
    await client.action("CancelAtxfer", Channel=channel)


async def set_global(client: AmiClient, name: str, value: str) -> None:
    """Set a global dialplan variable."""
    await client.action("Setvar", Variable=name, Value=value)


async def db_put(client: AmiClient, family: str, key: str, value: str) -> None:
    """Write one AstDB value."""
    await client.action("DBPut", Family=family, Key=key, Val=value)


async def play_dtmf(client: AmiClient, channel: str, digit: str, duration_ms: int = 120) -> None:
    """Key a DTMF digit into a channel (as if its far end pressed it)."""
    await client.action("PlayDTMF", Channel=channel, Digit=digit, Duration=str(duration_ms))


async def ping(client: AmiClient, *, timeout: float | None = None) -> None:
    """A round trip to Asterisk."""
    await client.action("Ping", timeout=timeout)


async def pjsip_auths(client: AmiClient, *, timeout: float = 30) -> list[AuthList]:
    """Every PJSIP auth with its password (Asterisk lets only an AMI user with write=system ask:
    AmiActionFailed "Permission denied" otherwise)."""
    rows = await client.action("PJSIPShowAuths", as_list=True, timeout=timeout)
    return responses.pjsip_auths(rows)


class SpyMode(StrEnum):
    """How a supervisor joins an agent's call (ChanSpy's options)."""

    LISTEN = "listen"  # hears both, nobody hears the supervisor
    WHISPER = "whisper"  # coach: only the agent hears the supervisor
    BARGE = "barge"  # both hear the supervisor


# q: no beep or channel name announced to the supervisor; E: end when the agent's leg ends;
# w: whisper to the spied-on channel (the agent); B: barge, talk to both sides.
_SPY_OPTIONS = {SpyMode.LISTEN: "qE", SpyMode.WHISPER: "qwE", SpyMode.BARGE: "qBE"}


def spy_prefix(interface: str) -> str:
    """ChanSpy's channel-name prefix for an agent's device: `PJSIP/1001` -> `PJSIP/1001-`
    (channels are named <device>-<sequence>, and 1001 alone would also match 10010);
    `Local/1001@sim-agent/n` -> `Local/1001@sim-agent-`."""
    device = interface.removesuffix("/n")
    if not device or any(ch in device for ch in ",|\r\n"):
        raise InvalidInput(f"{interface!r} is not a device ChanSpy can follow")
    return device + "-"


async def end_spies(client: AmiClient, agent_interface: str) -> list[str]:
    """Hang up every ChanSpy leg following `agent_interface`'s calls; the channels hung up.

    ChanSpy's E option (end when the spied-on channel hangs up) is checked only when a frame
    arrives from the supervisor's own channel: a phone that sends nothing then (an idle echo in
    the tests, a phone with silence suppression) keeps the spy leg up for ever. So the server
    ends it when the agent's part of the call is over."""
    spec = spy_prefix(agent_interface) + ","
    gone = []
    for c in await core_show_channels(client):
        if c.application == "ChanSpy" and c.application_data.startswith(spec):
            try:
                await hangup(client, c.channel)
            except AmiActionFailed:
                continue  # it went by itself meanwhile
            gone.append(c.channel)
    return gone


async def spy(
    client: AmiClient,
    supervisor_device: str,
    agent_interface: str,
    mode: SpyMode,
    *,
    caller_id: str = "",
    ring_seconds: int = 30,
) -> None:
    """Ring the supervisor's phone; once answered, ChanSpy on the agent's call in `mode`."""
    await originate(
        client,
        Originate(
            channel=supervisor_device,
            application="ChanSpy",
            data=f"{spy_prefix(agent_interface)},{_SPY_OPTIONS[mode]}",
            caller_id=caller_id,
            timeout_ms=ring_seconds * 1000,
        ),
    )
