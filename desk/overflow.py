"""Queue back-up alerts and overflow (6.3.1.4, 4.1 virtual desk, 4.2 f).

Every second, per queue: the wallboard's snapshot goes through the back-up rules
(cti/routing/rules.py). When a queue becomes backed up, the lead is told at once (a banner on the
wallboard, an IM message, a `backup_alerts` row); while it stays backed up the overflow actions
of routing.yaml run, longest-waiting callers first:

- mobile: the caller is taken out of the queue (AMI QueueWithdrawCaller) and dialled through to
  an on-call engineer's mobile (dialplan [cti-overflow]); the engineer hears the incident number
  first; unanswered, the caller goes back to the head of the queue;
- im: the waiting call is posted to the IM channels with a signed, expiring "take this call" link
  per on-call responder; the first to take it has the caller put through to their phone or mobile;
- callback: the caller is offered "press 1 to be called back, keeping your place"; call-backs are
  dialled once an agent is ready and no earlier caller is still waiting, one at a time.

Everything is journaled on the call (its `overflows`), so the metrics can count it.
"""

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, or_, select, update

from cti.ami.client import AmiClient
from cti.calls import LiveCall
from cti.db import SessionMaker
from cti.errors import AmiError
from cti.routing.config import ImChannel, RoutingConfig
from cti.routing.im import Message, build
from cti.routing.rules import (
    Callback,
    Change,
    QueueState,
    Target,
    WaitingCall,
    choose_overflow,
    evaluate,
    next_callback,
)
from cti.tracker import CallTracker
from desk.agents import AgentService, AgentState
from desk.board import WallboardService, waiting_in
from desk.models import BackupAlert, CallbackRequest, OncallShift, OverflowOffer, Staff
from desk.web.hub import Hub

logger = logging.getLogger(__name__)

CALLBACK_DIAL_TIMEOUT = 90.0  # a call-back not connected by then has failed (it is not retried)


@dataclass(frozen=True)
class Responder:
    """Someone on call now."""

    shift_id: int
    name: str
    mobile: str
    im_channel: str
    im_handle: str


class OverflowService:
    """Watches the queues, alerts the lead and moves waiting callers on."""

    def __init__(
        self,
        sessions: SessionMaker,
        hub: Hub,
        client: AmiClient,
        tracker: CallTracker,
        agents: AgentService,
        board: WallboardService,
        routing: RoutingConfig,
        secret: str,
        public_url: str,
        device: Any,
    ) -> None:
        self.sessions = sessions
        self.hub = hub
        self.client = client
        self.tracker = tracker
        self.agents = agents
        self.board = board
        self.routing = routing
        self.signer = URLSafeTimedSerializer(secret, salt="cti-take-call")
        self.public_url = (routing.base_url or public_url).rstrip("/")
        self.device = device  # ext -> dial string of a desk phone
        self.states: dict[str, QueueState] = {}
        self.alert_ids: dict[str, int] = {}
        self.peaks: dict[str, dict[str, float]] = {}
        self.sent_to_mobile: dict[str, str] = {}  # uniqueid -> mobile number (busy while dialling)
        self.offered_im: set[str] = set()
        self.offered_callback: set[str] = set()
        self.callbacks: dict[str, Callback] = {}
        self.callback_started: dict[str, float] = {}
        self.http: aiohttp.ClientSession | None = None
        self.deliveries: list[
            dict[str, Any]
        ] = []  # the last IM deliveries, for /healthz-like views
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        # When the earliest open IM offer expires (None: no open offer), so that the one-second
        # loop touches the database for expiry only when an offer is due.
        self._next_expiry: float | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load pending call-backs and start the loop."""
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        async with self.sessions() as s:
            rows = await s.scalars(
                select(CallbackRequest).where(CallbackRequest.state.in_(["pending", "dialling"]))
            )
            for r in rows.all():
                self.callbacks[r.uniqueid] = Callback(r.uniqueid, r.number, r.queued_at.timestamp())
            self._next_expiry = await self._earliest_expiry(s)
        self._task = asyncio.create_task(self._run(), name="overflow")

    async def close(self) -> None:
        """Stop the loop and the HTTP client."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.http is not None:
            await self.http.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if not self.client.connected:
                continue
            try:
                await self.tick(time.time())
            except Exception:
                logger.exception("overflow evaluation failed")

    # -- the rules ------------------------------------------------------------------------------

    async def tick(self, now: float) -> None:
        """One evaluation of every queue."""
        async with self._lock:
            queues = set(self.board.queues) | {
                c.queue for c in self.tracker.calls.values() if c.queue
            }
            for queue in sorted(queues):
                cfg = self.routing.for_queue(queue)
                snap = self.board.queue_snapshot(queue, now)
                result = evaluate(cfg.rules, snap, self.states.get(queue, QueueState()), now)
                self.states[queue] = result.state
                if result.change == Change.RAISED:
                    await self._raise(
                        queue, result.tripped, snap.waiting, snap.longest_wait, snap.ready
                    )
                elif result.change == Change.CLEARED:
                    await self._clear(queue)
                if result.state.backed_up:
                    peak = self.peaks.setdefault(queue, {})
                    for m, v in result.tripped.items():
                        peak[m.value] = max(peak.get(m.value, 0.0), _finite(v))
                    self.board.set_banner(queue, self._banner(queue, result.tripped, now))
                    await self._overflow(queue, cfg.overflow, now)
            await self._settle_mobiles()
            await self._dial_callbacks(now)
            await self._expire_offers(now)

    def _banner(self, queue: str, tripped: dict[Any, float], now: float) -> dict[str, Any]:
        since = self.states[queue].backed_up_since or now
        return {
            "queue": queue,
            "since": since,
            "alert_id": self.alert_ids.get(queue),
            "rules": {m.value: _finite(v) for m, v in tripped.items()},
        }

    async def _raise(
        self, queue: str, tripped: dict[Any, float], waiting: int, longest: float, ready: int
    ) -> None:
        now = datetime.now(UTC)
        rules = {m.value: _finite(v) for m, v in tripped.items()}
        self.peaks[queue] = dict(rules)
        async with self.sessions.begin() as s:
            alert = BackupAlert(queue=queue, raised_at=now, rules=rules, notified=[])
            s.add(alert)
            await s.flush()
            self.alert_ids[queue] = alert.id
        logger.warning("queue %s backed up: %s", queue, rules)
        msg = Message(
            "backup_alert",
            f"服务台排队积压 / Queue backed up: {queue}",
            (
                f"等待 waiting: {waiting}",
                f"最长等待 longest wait: {int(longest)} s",
                f"就绪坐席 ready agents: {ready}",
                "触发规则 rules: " + ", ".join(f"{k}={v:g}" for k, v in rules.items()),
            ),
            f"{self.public_url}/wallboard",
            "打开大屏 Open the wallboard",
            {
                "queue": queue,
                "waiting": waiting,
                "longest_wait": longest,
                "ready": ready,
                "rules": rules,
            },
        )
        notified = await self._send(self.routing.alert_channels, msg)
        async with self.sessions.begin() as s:
            await s.execute(
                update(BackupAlert)
                .where(BackupAlert.id == self.alert_ids[queue])
                .values(notified=notified)
            )
        self.hub.publish("wallboard", {"type": "alert", "queue": queue, "rules": rules})

    async def _clear(self, queue: str) -> None:
        alert_id = self.alert_ids.pop(queue, None)
        peak = self.peaks.pop(queue, {})
        if alert_id is not None:
            async with self.sessions.begin() as s:
                await s.execute(
                    update(BackupAlert)
                    .where(BackupAlert.id == alert_id)
                    .values(cleared_at=datetime.now(UTC), rules=peak)
                )
        self.board.set_banner(queue, None)
        logger.warning("queue %s no longer backed up", queue)
        await self._send(
            self.routing.alert_channels,
            Message(
                "backup_cleared",
                f"排队已恢复正常 / Queue back to normal: {queue}",
                (),
                None,
                "",
                {"queue": queue, "peak": peak},
            ),
        )

    # -- overflow actions -----------------------------------------------------------------------

    async def _overflow(self, queue: str, actions: dict[str, float], now: float) -> None:
        waiting = waiting_in(self.tracker.calls, queue, now)
        if "mobile" in actions:
            await self._to_mobiles(queue, waiting, actions["mobile"], now)
            waiting = waiting_in(self.tracker.calls, queue, now)
        if "im" in actions:
            for call, wait in waiting:
                if wait >= actions["im"] and call.uniqueid not in self.offered_im:
                    self.offered_im.add(call.uniqueid)
                    await self._offer_im(queue, call, wait)
        if "callback" in actions:
            for call, wait in waiting:
                if (
                    wait >= actions["callback"]
                    and call.uniqueid not in self.offered_callback
                    and call.uniqueid not in self.sent_to_mobile
                ):
                    self.offered_callback.add(call.uniqueid)
                    await self._withdraw(queue, call, "offer::callback")

    async def responders(self, queue: str) -> list[Responder]:
        """Who is on call now for this queue."""
        now = datetime.now(UTC)
        async with self.sessions() as s:
            rows = await s.scalars(
                select(OncallShift)
                .where(
                    OncallShift.starts_at <= now,
                    OncallShift.ends_at > now,
                    or_(OncallShift.queue.is_(None), OncallShift.queue == queue),
                )
                .order_by(OncallShift.starts_at, OncallShift.id)
            )
            return [
                Responder(r.id, r.name, r.mobile, r.im_channel, r.im_handle) for r in rows.all()
            ]

    async def _to_mobiles(
        self, queue: str, waiting: list[tuple[LiveCall, float]], min_wait: float, now: float
    ) -> None:
        people = [r for r in await self.responders(queue) if r.mobile]
        busy = set(self.sent_to_mobile.values())
        targets = [Target(r.name, r.mobile, r.mobile in busy) for r in people]
        calls = [
            WaitingCall(c.uniqueid, now - w, c.uniqueid in self.sent_to_mobile) for c, w in waiting
        ]
        by_id = {c.uniqueid: c for c, _ in waiting}
        for chosen, target in choose_overflow(calls, targets, now, min_wait):
            call = by_id[chosen.uniqueid]
            if await self._withdraw(queue, call, f"mobile:{target.number}:mobile"):
                self.sent_to_mobile[call.uniqueid] = target.number
                logger.info(
                    "overflow %s -> mobile %s (%s)", call.uniqueid, target.number, target.name
                )

    async def _settle_mobiles(self) -> None:
        """A mobile is free again once its call's attempt is over (answered calls keep it)."""
        for uid in list(self.sent_to_mobile):
            call = self.tracker.calls.get(uid)
            last = call.overflows[-1] if call and call.overflows else None
            if call is None or (
                last is not None and last["result"] not in ("dialling", "answered")
            ):
                del self.sent_to_mobile[uid]
                if call is not None:
                    self.offered_im.discard(uid)

    async def _withdraw(self, queue: str, call: LiveCall, info: str) -> bool:
        try:
            await self.client.action(
                "QueueWithdrawCaller", Queue=queue, Caller=call.channel, WithdrawInfo=info
            )
        except AmiError as exc:
            logger.warning("could not withdraw %s from %s: %s", call.uniqueid, queue, exc)
            return False
        return True

    # -- IM offers ------------------------------------------------------------------------------

    def take_token(self, offer_id: int, shift_id: int) -> str:
        """A signed token for one responder and one offer."""
        return self.signer.dumps([offer_id, shift_id])

    def read_token(self, token: str) -> tuple[int, int]:
        """(offer id, shift id) of a valid, unexpired token; ValueError otherwise."""
        try:
            offer_id, shift_id = self.signer.loads(token, max_age=int(self.routing.take_expires))
        except SignatureExpired:
            raise ValueError("this link has expired") from None
        except (BadSignature, TypeError, ValueError):
            raise ValueError("this link is not valid") from None
        return int(offer_id), int(shift_id)

    async def _offer_im(self, queue: str, call: LiveCall, wait: float) -> None:
        people = await self.responders(queue)
        if not people or not self.routing.offer_channels:
            return
        now = datetime.now(UTC)
        async with self.sessions.begin() as s:
            offer = OverflowOffer(
                uniqueid=call.uniqueid,
                queue=queue,
                caller_number=call.caller_number,
                caller_name=call.caller_name,
                incident_number=call.incident_number,
                created_at=now,
                expires_at=now + timedelta(seconds=self.routing.take_expires),
                state="open",
                deliveries=[],
            )
            s.add(offer)
            await s.flush()
            offer_id = offer.id
        expires = offer.expires_at.timestamp()
        self._next_expiry = min(self._next_expiry or expires, expires)
        links = {
            r.shift_id: f"{self.public_url}/take/{self.take_token(offer_id, r.shift_id)}"
            for r in people
        }
        lines = [
            f"来电 caller: {call.caller_number} {call.caller_name}".strip(),
            f"事件 incident: {call.incident_number or '-'}",
            f"已等待 waited: {int(wait)} s",
        ]
        deliveries = []
        for name in self.routing.offer_channels:
            channel = self.routing.channels[name]
            for r in people:
                if r.im_channel and r.im_channel != name:
                    continue
                who = f"@{r.im_handle} " if r.im_handle else ""
                msg = Message(
                    "call_offer",
                    f"{who}排队来电待接听 / A waiting call for you, {r.name}",
                    tuple(lines),
                    links[r.shift_id],
                    "接听此来电 Take this call",
                    {
                        "offer_id": offer_id,
                        "queue": queue,
                        "uniqueid": call.uniqueid,
                        "caller_number": call.caller_number,
                        "incident_number": call.incident_number,
                        "wait": int(wait),
                        "responder": r.name,
                        "take_url": links[r.shift_id],
                        "expires_in": self.routing.take_expires,
                    },
                )
                deliveries += await self._send_one(channel, msg)
        async with self.sessions.begin() as s:
            await s.execute(
                update(OverflowOffer)
                .where(OverflowOffer.id == offer_id)
                .values(deliveries=deliveries)
            )

    async def take(self, token: str) -> dict[str, Any]:
        """A responder clicked: the first valid click on an open offer wins."""
        offer_id, shift_id = self.read_token(token)
        now = datetime.now(UTC)
        async with self.sessions.begin() as s:
            shift = await s.get(OncallShift, shift_id)
            offer = await s.get(OverflowOffer, offer_id)
            if shift is None or offer is None:
                raise ValueError("this link is not valid")
            taken = await s.execute(
                update(OverflowOffer)
                .where(OverflowOffer.id == offer_id, OverflowOffer.state == "open")
                .values(state="taken", taken_by=shift.name, taken_at=now)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                await s.refresh(offer)
                return {
                    "ok": False,
                    "state": offer.state,
                    "taken_by": offer.taken_by,
                    "offer": offer_id,
                }
            dial = await self._responder_dial(s, shift)
        call = self.tracker.calls.get(offer.uniqueid)
        if call is None or call.in_queue_since is None or not dial:
            reason = (
                "no phone for this responder" if not dial else "the caller is no longer waiting"
            )
            async with self.sessions.begin() as s:
                await s.execute(
                    update(OverflowOffer).where(OverflowOffer.id == offer_id).values(state="gone")
                )
            return {"ok": False, "state": "gone", "reason": reason, "offer": offer_id}
        ok = await self._withdraw(offer.queue, call, f"{dial}:im")
        self.hub.publish(
            "wallboard", {"type": "taken", "uniqueid": call.uniqueid, "by": shift.name}
        )
        await self._send(
            self.routing.offer_channels,
            Message(
                "call_taken",
                f"来电已由 {shift.name} 接听 / Taken by {shift.name}",
                (f"来电 caller: {call.caller_number}",),
                None,
                "",
                {"offer_id": offer_id, "taken_by": shift.name},
            ),
        )
        return {
            "ok": ok,
            "state": "taken",
            "taken_by": shift.name,
            "offer": offer_id,
            "caller_number": call.caller_number,
            "incident_number": call.incident_number,
        }

    async def _responder_dial(self, session: Any, shift: OncallShift) -> str:
        """The responder's mobile through the carrier, else their desk phone."""
        if shift.mobile:
            return f"mobile:{''.join(ch for ch in shift.mobile if ch.isdigit())}"
        staff = await session.get(Staff, shift.staff_id) if shift.staff_id else None
        if staff is not None and staff.extension:
            return f"device:{self.device(staff.extension)}"
        return ""

    async def _expire_offers(self, now: float) -> None:
        if self._next_expiry is None or now <= self._next_expiry:
            return
        cutoff = datetime.fromtimestamp(now, UTC)
        async with self.sessions.begin() as s:
            await s.execute(
                update(OverflowOffer)
                .where(OverflowOffer.state == "open", OverflowOffer.expires_at < cutoff)
                .values(state="expired")
            )
            self._next_expiry = await self._earliest_expiry(s)

    @staticmethod
    async def _earliest_expiry(session: Any) -> float | None:
        at = await session.scalar(
            select(func.min(OverflowOffer.expires_at)).where(OverflowOffer.state == "open")
        )
        return at.timestamp() if at is not None else None

    # -- IM delivery ----------------------------------------------------------------------------

    async def _send(self, names: tuple[str, ...], msg: Message) -> list[dict[str, Any]]:
        out = []
        for name in names:
            out += await self._send_one(self.routing.channels[name], msg)
        return out

    async def _send_one(self, channel: ImChannel, msg: Message) -> list[dict[str, Any]]:
        req = build(channel, msg, time.time())
        record: dict[str, Any] = {"channel": channel.name, "kind": msg.kind, "at": time.time()}
        assert self.http is not None
        try:
            async with self.http.post(req.url, data=req.body, headers=req.headers) as resp:
                record["status"] = resp.status
                if resp.status >= 300:
                    record["error"] = (await resp.text())[:200]
        except (aiohttp.ClientError, TimeoutError) as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            logger.warning("IM %s to %s failed: %s", msg.kind, channel.name, exc)
        self.deliveries = [*self.deliveries[-99:], record]
        return [record]

    # -- call-backs -----------------------------------------------------------------------------

    async def request_callback(self, uniqueid: str) -> str | None:
        """The IVR's offer: the caller pressed 1. Their place is their first join time."""
        call = self.tracker.calls.get(uniqueid)
        if call is None or call.queued_at is None or not call.caller_number.isdigit():
            return None
        now = datetime.now(UTC)
        async with self.sessions.begin() as s:
            if await s.scalar(
                select(CallbackRequest.id).where(CallbackRequest.uniqueid == uniqueid)
            ):
                return None
            s.add(
                CallbackRequest(
                    uniqueid=uniqueid,
                    queue=call.queue or "",
                    number=call.caller_number,
                    incident_number=call.incident_number,
                    queued_at=datetime.fromtimestamp(call.queued_at, UTC),
                    requested_at=now,
                    state="pending",
                    attempts=0,
                    result="",
                    updated_at=now,
                )
            )
        self.callbacks[uniqueid] = Callback(uniqueid, call.caller_number, call.queued_at)
        return call.caller_number

    def rejoin_position(self, uniqueid: str) -> int:
        """Behind every caller still waiting who joined earlier, ahead of everyone later."""
        call = self.tracker.calls.get(uniqueid)
        if call is None or call.queued_at is None:
            return 1
        ahead = [
            c
            for c in self.tracker.calls.values()
            if c.queue == call.queue
            and c.in_queue_since is not None
            and c.queued_at is not None
            and c.queued_at < call.queued_at
        ]
        return len(ahead) + 1

    async def _dial_callbacks(self, now: float) -> None:
        for uid, started in list(self.callback_started.items()):
            leg = next((c for c in self.tracker.calls.values() if c.callback_of == uid), None)
            if leg is not None or now - started > CALLBACK_DIAL_TIMEOUT:
                await self._callback_done(
                    uid,
                    "connected" if leg is not None else "not answered",
                    leg.uniqueid if leg else None,
                )
        ready = sum(1 for a in self.agents.agents.values() if a.state == AgentState.READY)
        queues = {c.queue for c in self.tracker.calls.values() if c.queue}
        waiting = [
            WaitingCall(c.uniqueid, c.queued_at or now)
            for c in self.tracker.calls.values()
            if c.in_queue_since is not None and c.queue in queues and c.callback_of is None
        ]
        chosen = next_callback(self.callbacks.values(), waiting, ready)
        if chosen is None:
            return
        self.callbacks[chosen.uniqueid] = Callback(
            chosen.uniqueid, chosen.number, chosen.queued_at, dialling=True
        )
        self.callback_started[chosen.uniqueid] = now
        async with self.sessions.begin() as s:
            req = await s.scalar(
                select(CallbackRequest).where(CallbackRequest.uniqueid == chosen.uniqueid)
            )
            if req is None:
                return
            req.state, req.attempts, req.updated_at = (
                "dialling",
                req.attempts + 1,
                datetime.now(UTC),
            )
            queue, incident = req.queue, req.incident_number or ""
        try:
            await self.client.request(
                "Originate",
                {
                    "Channel": f"Local/{chosen.number}@cti-callback/n",
                    "Context": "cti-callback-queue",
                    "Exten": "s",
                    "Priority": "1",
                    "Async": "true",
                    "Timeout": "45000",
                    "CallerID": f"<{chosen.number}>",
                    "Variable": f"CTI_CALLBACK_OF={chosen.uniqueid},CTI_QUEUE={queue},"
                    f"__CTI_INCIDENT={incident}",
                },
            )
        except AmiError as exc:
            await self._callback_done(chosen.uniqueid, f"originate failed: {exc}", None)

    async def _callback_done(self, uniqueid: str, result: str, leg: str | None) -> None:
        self.callback_started.pop(uniqueid, None)
        cb = self.callbacks.pop(uniqueid, None)
        if cb is None:
            return
        async with self.sessions.begin() as s:
            await s.execute(
                update(CallbackRequest)
                .where(CallbackRequest.uniqueid == uniqueid)
                .values(
                    state="done" if leg else "failed",
                    result=result,
                    callback_uniqueid=leg,
                    updated_at=datetime.now(UTC),
                )
            )
        self.board.touch()


def _finite(value: float) -> float:
    return value if value != float("inf") else 1e9
