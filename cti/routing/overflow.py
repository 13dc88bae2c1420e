"""Overflow while a queue is backed up (4.1 virtual desk, 4.2 f), longest-waiting callers first:

- mobile: the caller is taken out of the queue (AMI QueueWithdrawCaller) and dialled through to
  an on-call engineer's mobile (dialplan [cti-overflow]); the engineer hears the incident number
  first; unanswered, the caller goes back to the head of the queue;
- im: the waiting call is posted to the IM channels with a signed, expiring "take this call" link
  per on-call responder; the first to take it has the caller put through to their phone or mobile;
- callback: the caller is offered "press 1 to be called back, keeping your place" (the IVR's
  `callback` route; the bookings are cti/routing/callbacks.py's).

Every step is journaled on the call (its `overflows`, from the dialplan's UserEvents).
"""

import logging
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from cti.ami import actions
from cti.ami.client import AmiClient
from cti.db import SessionMaker
from cti.errors import AmiError
from cti.live.bus import Bus, OfferTaken
from cti.live.model import LiveCall
from cti.live.tracker import CallTracker
from cti.phone import digits
from cti.routing.config import RoutingConfig
from cti.routing.delivery import ImDelivery
from cti.routing.im import Message
from cti.routing.models import OfferState, OverflowOffer
from cti.routing.ports import Responder, Roster
from cti.routing.rules import Target, WaitingCall, choose_overflow

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TakeResult:
    """What a click on a take link did."""

    ok: bool
    state: OfferState
    offer: int
    taken_by: str | None = None
    reason: str = ""
    caller_number: str = ""
    incident_number: str | None = None

    def as_json(self) -> dict[str, Any]:
        """For the take page and its API."""
        return {
            "ok": self.ok,
            "state": self.state.value,
            "offer": self.offer,
            "taken_by": self.taken_by,
            "reason": self.reason,
            "caller_number": self.caller_number,
            "incident_number": self.incident_number,
        }


def take_signer(secret: str) -> URLSafeTimedSerializer:
    """What signs and reads take links (any node of the desk can read them)."""
    return URLSafeTimedSerializer(secret, salt="cti-take-call")


def read_take_token(signer: URLSafeTimedSerializer, expires: float, token: str) -> tuple[int, int]:
    """(offer id, shift id) of a valid, unexpired token; ValueError otherwise."""
    try:
        offer_id, shift_id = signer.loads(token, max_age=int(expires))
    except SignatureExpired:
        raise ValueError("this link has expired") from None
    except (BadSignature, TypeError, ValueError):
        raise ValueError("this link is not valid") from None
    return int(offer_id), int(shift_id)


class OverflowService:
    """Moves waiting callers of a backed-up queue to mobiles, IM responders and call-back offers."""

    def __init__(
        self,
        sessions: SessionMaker,
        bus: Bus,
        client: AmiClient,
        tracker: CallTracker,
        roster: Roster,
        delivery: ImDelivery,
        routing: RoutingConfig,
        secret: str,
        public_url: str,
        device: Any,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.client = client
        self.tracker = tracker
        self.roster = roster
        self.delivery = delivery
        self.routing = routing
        self.signer = take_signer(secret)
        self.public_url = public_url
        self.device = device  # ext -> dial string of a desk phone
        # Overflow actions carried out, by kind: mobile, im (a take), callback, im_offer.
        self.actions: Counter[str] = Counter()
        self.sent_to_mobile: dict[str, str] = {}  # uniqueid -> mobile (busy while dialling)
        self.offered_im: set[str] = set()
        self.offered_callback: set[str] = set()
        # When the earliest open IM offer expires (None: no open offer), so that the one-second
        # loop touches the database for expiry only when an offer is due.
        self._next_expiry: float | None = None

    async def start(self) -> None:
        """Know when the first open offer expires."""
        async with self.sessions() as s:
            self._next_expiry = await _earliest_expiry(s)

    async def run(
        self,
        queue: str,
        actions_: dict[str, float],
        waiting: list[tuple[LiveCall, float]],
        now: float,
    ) -> None:
        """One pass over a backed-up queue's waiting callers (longest wait first)."""
        if "mobile" in actions_:
            await self._to_mobiles(queue, waiting, actions_["mobile"], now)
            waiting = [(c, w) for c, w in waiting if c.uniqueid not in self.sent_to_mobile]
        if "im" in actions_:
            for call, wait in waiting:
                if wait >= actions_["im"] and call.uniqueid not in self.offered_im:
                    self.offered_im.add(call.uniqueid)
                    await self._offer_im(queue, call, wait)
        if "callback" in actions_:
            for call, wait in waiting:
                if wait >= actions_["callback"] and call.uniqueid not in self.offered_callback:
                    self.offered_callback.add(call.uniqueid)
                    await self._withdraw(queue, call, "offer::callback")

    # -- mobiles ----------------------------------------------------------------------------------

    async def _to_mobiles(
        self, queue: str, waiting: list[tuple[LiveCall, float]], min_wait: float, now: float
    ) -> None:
        people = [r for r in await self.roster.responders(queue) if r.mobile]
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
                    "overflow to mobile %s (%s) linkedid=%s",
                    target.number,
                    target.name,
                    call.linkedid,
                )

    def settle_mobiles(self) -> None:
        """A mobile is free again once its call's attempt is over (answered calls keep it)."""
        for uid in list(self.sent_to_mobile):
            call = self.tracker.calls.get(uid)
            last = call.overflows[-1] if call and call.overflows else None
            if call is None or (last is not None and last.over):
                del self.sent_to_mobile[uid]
                if call is not None:
                    self.offered_im.discard(uid)

    async def _withdraw(self, queue: str, call: LiveCall, info: str) -> bool:
        try:
            await actions.withdraw_caller(self.client, queue, call.channel, info)
        except AmiError as exc:
            logger.warning("could not withdraw from %s: %s linkedid=%s", queue, exc, call.linkedid)
            return False
        self.actions[info.rpartition(":")[2]] += 1
        return True

    # -- IM offers and take links -----------------------------------------------------------------

    def take_token(self, offer_id: int, shift_id: int) -> str:
        """A signed token for one responder and one offer."""
        return self.signer.dumps([offer_id, shift_id])

    def read_token(self, token: str) -> tuple[int, int]:
        """(offer id, shift id) of a valid, unexpired token; ValueError otherwise."""
        return read_take_token(self.signer, self.routing.take_expires, token)

    async def _offer_im(self, queue: str, call: LiveCall, wait: float) -> None:
        people = await self.roster.responders(queue)
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
                state=OfferState.OPEN,
                deliveries=[],
            )
            s.add(offer)
            await s.flush()
            offer_id = offer.id
        self.actions["im_offer"] += 1
        expires = offer.expires_at.timestamp()
        self._next_expiry = min(self._next_expiry or expires, expires)
        deliveries = []
        for name in self.routing.offer_channels:
            channel = self.routing.channels[name]
            for r in people:
                if not r.im_channel or r.im_channel == name:
                    link = f"{self.public_url}/take/{self.take_token(offer_id, r.shift_id)}"
                    msg = _offer_message(offer_id, queue, call, wait, r, link, self.routing)
                    deliveries.append(await self.delivery.send_one(channel, msg))
        async with self.sessions.begin() as s:
            await s.execute(
                update(OverflowOffer)
                .where(OverflowOffer.id == offer_id)
                .values(deliveries=deliveries)
            )

    async def take(self, token: str) -> TakeResult:
        """A responder clicked: the first valid click on an open offer wins."""
        offer_id, shift_id = self.read_token(token)
        responder = await self.roster.responder(shift_id)
        now = datetime.now(UTC)
        async with self.sessions.begin() as s:
            offer = await s.get(OverflowOffer, offer_id)
            if responder is None or offer is None:
                raise ValueError("this link is not valid")
            taken = await s.execute(
                update(OverflowOffer)
                .where(OverflowOffer.id == offer_id, OverflowOffer.state == OfferState.OPEN)
                .values(state=OfferState.TAKEN, taken_by=responder.name, taken_at=now)
            )
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                await s.refresh(offer)
                return TakeResult(False, OfferState(offer.state), offer_id, offer.taken_by)
        dial = await self._responder_dial(responder)
        call = self.tracker.calls.get(offer.uniqueid)
        if call is None or not call.waiting or not dial:
            reason = (
                "no phone for this responder" if not dial else "the caller is no longer waiting"
            )
            async with self.sessions.begin() as s:
                await s.execute(
                    update(OverflowOffer)
                    .where(OverflowOffer.id == offer_id)
                    .values(state=OfferState.GONE)
                )
            return TakeResult(False, OfferState.GONE, offer_id, reason=reason)
        ok = await self._withdraw(offer.queue, call, f"{dial}:im")
        self.bus.publish(OfferTaken(call.uniqueid, responder.name))
        await self.delivery.send(
            self.routing.offer_channels,
            Message(
                "call_taken",
                f"来电已由 {responder.name} 接听 / Taken by {responder.name}",
                (f"来电 caller: {call.caller_number}",),
                None,
                "",
                {"offer_id": offer_id, "taken_by": responder.name},
            ),
        )
        return TakeResult(
            ok,
            OfferState.TAKEN,
            offer_id,
            responder.name,
            caller_number=call.caller_number,
            incident_number=call.incident_number,
        )

    async def _responder_dial(self, responder: Responder) -> str:
        """The responder's mobile through the carrier, else their desk phone."""
        if responder.mobile:
            return f"mobile:{''.join(ch for ch in responder.mobile if digits(ch))}"
        ext = await self.roster.desk_phone(responder.shift_id)
        return f"device:{self.device(ext)}" if ext else ""

    async def expire_offers(self, now: float) -> None:
        """Open offers past their time become expired (only when one is due)."""
        if self._next_expiry is None or now <= self._next_expiry:
            return
        cutoff = datetime.fromtimestamp(now, UTC)
        async with self.sessions.begin() as s:
            await s.execute(
                update(OverflowOffer)
                .where(OverflowOffer.state == OfferState.OPEN, OverflowOffer.expires_at < cutoff)
                .values(state=OfferState.EXPIRED)
            )
            self._next_expiry = await _earliest_expiry(s)


def _offer_message(
    offer_id: int,
    queue: str,
    call: LiveCall,
    wait: float,
    r: Responder,
    link: str,
    routing: RoutingConfig,
) -> Message:
    who = f"@{r.im_handle} " if r.im_handle else ""
    return Message(
        "call_offer",
        f"{who}排队来电待接听 / A waiting call for you, {r.name}",
        (
            f"来电 caller: {call.caller_number} {call.caller_name}".strip(),
            f"事件 incident: {call.incident_number or '-'}",
            f"已等待 waited: {int(wait)} s",
        ),
        link,
        "接听此来电 Take this call",
        {
            "offer_id": offer_id,
            "queue": queue,
            "uniqueid": call.uniqueid,
            "caller_number": call.caller_number,
            "incident_number": call.incident_number,
            "wait": int(wait),
            "responder": r.name,
            "take_url": link,
            "expires_in": routing.take_expires,
        },
    )


async def _earliest_expiry(session: AsyncSession) -> float | None:
    at = await session.scalar(
        select(func.min(OverflowOffer.expires_at)).where(OverflowOffer.state == OfferState.OPEN)
    )
    return at.timestamp() if at is not None else None
