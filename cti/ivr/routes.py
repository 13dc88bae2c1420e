"""The FastAGI routes: `ivr` (every inbound call), `survey` (after the agent hangs up),
`voicemail` (when the on-call engineer does not answer), and the IVR service that serves them."""

import contextlib
import logging
from collections import Counter
from typing import Protocol

from cti.asterisks import DEFAULT_ASTERISK
from cti.db import SessionMaker, retry_locked
from cti.errors import CtiError
from cti.ivr.agi import AgiAccess, AgiChannel, AgiHangup, AgiServer
from cti.ivr.context import IvrContext, StepLog
from cti.ivr.flow import CallFlow, record_message
from cti.ivr.menu import Action, Option
from cti.journal.models import IvrStep

logger = logging.getLogger(__name__)

SURVEY_SCORES = "12345"
# The dialplan's AGI routes (anything else is counted as "unknown").
ROUTES = frozenset({"ivr", "survey", "voicemail", "callback"})


async def survey(agi: AgiChannel, ctx: IvrContext, steps: StepLog) -> None:
    """'Please rate our service 1-5': stored with the call, the incident and the agent."""
    flow = CallFlow(agi, ctx, steps)
    flow.menu_name = "survey"
    flow.lang = (await agi.get_variable("CHANNEL(language)")) or ctx.menu.default_language
    incident = await agi.get_variable("CTI_INCIDENT")
    agent = await agi.get_variable("MEMBERNAME")
    for _ in range(2):
        key = await flow.ask("survey_intro", max_digits=1, timeout_s=6)
        if key and key in SURVEY_SCORES:
            await ctx.desk.record_survey(agi.uniqueid, incident, agent, int(key))
            await flow.user_event("CtiSurvey", Score=key)
            await flow.play("survey_thanks")
            return
        if key:
            await flow.play("invalid_choice")
    await flow.play("goodbye")


async def voicemail_route(agi: AgiChannel, ctx: IvrContext, steps: StepLog) -> None:
    """Voicemail for a caller the on-call engineer did not answer (their incident exists)."""
    flow = CallFlow(agi, ctx, steps)
    flow.lang = (await agi.get_variable("CHANNEL(language)")) or ctx.menu.default_language
    flow.voicemail = True
    recording = await record_message(flow)
    incident = await agi.get_variable("CTI_INCIDENT")
    if recording and incident:
        await ctx.desk.attach_recording(incident, recording)
    elif recording:
        option = Option(Action.VOICEMAIL, type="fault", category="留言", category_en="Voicemail")
        await flow.open_incident(option, recording=recording, channel="voicemail")
    if not agi.hung_up:
        await flow.play("voicemail_saved")
        await flow.play("goodbye")
    await flow.finish()


class CallbackPort(Protocol):
    """The overflow service, as the call-back offer needs it."""

    async def request_callback(self, uniqueid: str) -> str | None:
        """Book a call-back for this waiting caller; the number to call, or None if refused."""
        ...

    def rejoin_position(self, uniqueid: str) -> int:
        """Where this caller goes back into the queue (1 = head): behind earlier callers only."""
        ...


async def callback_offer(
    agi: AgiChannel, ctx: IvrContext, steps: StepLog, port: CallbackPort | None
) -> None:
    """ "Press 1 to be called back, keeping your place": booked, or back where they were."""
    flow = CallFlow(agi, ctx, steps)
    flow.menu_name = "callback"
    flow.lang = (await agi.get_variable("CHANNEL(language)")) or ctx.menu.default_language
    key = await flow.ask("callback_offer", max_digits=1, timeout_s=5)
    number = await port.request_callback(agi.uniqueid) if key == "1" and port else None
    if number:
        await flow.user_event("CtiCallback", Number=number)
        await flow.play("callback_confirmed")
        await agi.set_variable("CTI_NEXT", "hangup")
        return
    position = port.rejoin_position(agi.uniqueid) if port else 1
    await agi.set_variable("CTI_QUEUE_POSITION", str(position))
    await agi.set_variable("CTI_NEXT", "requeue")


class IvrService:
    """The FastAGI server with the IVR's routes; journals every call's steps."""

    def __init__(
        self,
        host: str,
        port: int,
        ctx: IvrContext,
        sessions: SessionMaker,
        callbacks: CallbackPort | None = None,
        access: AgiAccess | None = None,
        asterisk: str = DEFAULT_ASTERISK,
    ) -> None:
        self.ctx = ctx
        # The Asterisk whose dialplan calls this port: its calls' steps are journaled as its.
        self.asterisk = asterisk
        self.sessions = sessions
        self.server = AgiServer(host, port, self.handle, access=access)
        self.callbacks = callbacks  # the call-back bookings (routing), if they run
        self.active = 0  # FastAGI sessions running now, and so far per route (for /metrics)
        self.sessions_by_route: Counter[str] = Counter()

    async def start(self) -> None:
        """Listen for Asterisk."""
        await self.server.start()

    async def stop(self) -> None:
        """End every call's coroutine."""
        await self.server.stop()

    async def handle(self, agi: AgiChannel) -> None:
        """Route one FastAGI connection; a failure sends the caller to a human."""
        route = agi.route
        steps = StepLog(agi.uniqueid, route or "?")
        self.active += 1
        self.sessions_by_route[route if route in ROUTES else "unknown"] += 1
        try:
            if route == "ivr":
                await CallFlow(agi, self.ctx, steps).run()
            elif route == "survey":
                await survey(agi, self.ctx, steps)
            elif route == "voicemail":
                await voicemail_route(agi, self.ctx, steps)
            elif route == "callback":
                await callback_offer(agi, self.ctx, steps, self.callbacks)
            else:
                logger.warning("unknown AGI route %r linkedid=%s", route, agi.uniqueid)
        except AgiHangup:
            raise
        except (CtiError, OSError, TimeoutError) as exc:
            logger.error(
                "IVR step failed linkedid=%s: %s; sending the caller to an agent", agi.uniqueid, exc
            )
            await self._rescue(agi)
        except Exception:
            logger.exception(
                "IVR crashed linkedid=%s; sending the caller to an agent", agi.uniqueid
            )
            await self._rescue(agi)
        finally:
            self.active -= 1
            await self._journal(steps)

    async def _rescue(self, agi: AgiChannel) -> None:
        with contextlib.suppress(Exception):
            lang = self.ctx.menu.default_language
            await agi.stream_file(self.ctx.prompts.file("system_error", lang))
            await agi.set_variable("CTI_NEXT", "queue")

    async def _journal(self, steps: StepLog) -> None:
        if not steps.rows:
            return

        async def write() -> None:
            async with self.sessions.begin() as session:
                session.add_all([IvrStep(**row, asterisk=self.asterisk) for row in steps.rows])

        try:
            await retry_locked(write, f"IVR steps of {steps.call_uniqueid}")
        except Exception:
            logger.exception("could not journal IVR steps linkedid=%s", steps.call_uniqueid)
