"""One inbound call in the IVR: welcome, hours, announcements, menus, caller lookup, the incident
opened before the queue and its number read back, incident status by phone.

The call goes back to the dialplan with channel variables: CTI_NEXT (queue, oncall, hangup),
CTI_QUEUE, __CTI_INCIDENT (inherited by the agent's leg), CTI_LANGUAGE, CTI_ONCALL_NUMBER.
"""

import asyncio
import contextlib
import logging
import time

from cti.ivr.agi import AgiChannel, AgiHangup
from cti.ivr.context import IvrContext, StepLog
from cti.ivr.menu import Action, Menu, Option
from cti.ivr.ports import AnnouncementPrompt, NewIncident, Requester
from cti.ivr.prompts import SUBDIR
from cti.journal.models import clip
from cti.journal.recordings import recorded
from cti.phone import CallerNumber, digits, normalize

# The recording notice's languages, in the order it is played.
NOTICE_LANGUAGES = ("zh", "en")

logger = logging.getLogger(__name__)

ALL_KEYS = "0123456789*#"
MAX_REPEATS = 3
# The way through the menus is kept short whatever the caller keys (`*` repeats a menu without
# end): it travels in an AGI command (Asterisk reads at most 2 KB of one) and into VARCHAR(200)s.
PATH_STEPS = 64
PATH_CHARS = 200


class CallFlow:
    """The IVR for one call."""

    def __init__(self, agi: AgiChannel, ctx: IvrContext, steps: StepLog) -> None:
        self.agi = agi
        self.ctx = ctx
        self.steps = steps
        self.lang = ctx.menu.default_language
        self.caller: CallerNumber = normalize(agi.env.get("agi_callerid"), ctx.plan)
        self.requester: Requester | None = None
        self.path: list[str] = []
        self.incident: str | None = None
        self.voicemail = False
        # A key pressed during a prompt that does not take input itself (the welcome, "no key
        # was pressed"): it answers the next menu at once instead of being lost.
        self.pending: str | None = None

    # -- building blocks ---------------------------------------------------------------------

    async def play(self, prompt: str, escape: str = "") -> str | None:
        """Play a catalogue prompt in the caller's language; the key that interrupted it."""
        return await self.agi.stream_file(self.ctx.prompts.file(prompt, self.lang), escape)

    async def ask(
        self, prompt: str, *, max_digits: int, timeout_s: float, also: str | None = None
    ) -> str:
        """Play a prompt (and `also`) and collect digits; '' on silence. '#' ends longer input."""
        started = time.time()
        first = await self.play(prompt, ALL_KEYS)
        if first is None and also:
            first = await self.play(also, ALL_KEYS)
        if first is None:
            first = await self.agi.wait_for_digit(int(timeout_s * 1000))
        digits = first or ""
        while digits and max_digits > 1 and len(digits) < max_digits and not digits.endswith("#"):
            nxt = await self.agi.wait_for_digit(int(timeout_s * 1000))
            if nxt is None:
                break
            digits += nxt
        digits = digits.rstrip("#") if max_digits > 1 else digits
        self.steps.add(self.menu_name, prompt, digits, "", started)
        return digits

    menu_name = ""

    async def set_vars(self, **values: str) -> None:
        """Set channel variables for the dialplan."""
        for name, value in values.items():
            await self.agi.set_variable(name, value)

    async def user_event(self, name: str, **fields: str) -> None:
        """Raise a UserEvent on the channel (the call journal reads it over AMI)."""
        body = ",".join(f"{k}: {v.replace(',', ' ')}" for k, v in fields.items())
        await self.agi.exec("UserEvent", f"{name},{body}")

    # -- the call ------------------------------------------------------------------------------

    async def run(self) -> None:
        """The whole IVR; returns with CTI_NEXT set."""
        started = time.time()
        if self.caller.usable and self.caller.key:
            self.requester = await self.ctx.desk.identify_caller(self.caller.key)
        # The caller's number rides on the lookup step: a call that ends in the IVR while the
        # AMI link is down is recorded from these steps alone (cti/reconcile.py, call_from_ivr).
        who = self.requester.employee_no if self.requester else "unknown"
        self.steps.add("", "lookup", self.caller.raw[:40], who, started)
        # The lead's hours (the database wins over hours.yaml) and the announcements in force are
        # read while the welcome plays, so a caller's key finds them ready; still on every call,
        # so an edit applies to the next caller.
        reads = (
            asyncio.ensure_future(self.ctx.desk.opening_hours()),
            asyncio.ensure_future(self.ctx.desk.active_announcements(self.ctx.now())),
        )
        try:
            self.pending = await self.play("welcome", ALL_KEYS)
            desk_hours = await reads[0]
            now = self.ctx.now()
            hours = desk_hours.hours if desk_hours is not None else self.ctx.hours
            if not hours.is_open(now):
                self.pending = None  # meant for the daytime menu; the caller must hear the hours
                started = time.time()
                stated = desk_hours.prompts.get(self.lang) if desk_hours is not None else None
                if stated:  # says the hours from the same data
                    await self.agi.stream_file(stated, "")
                else:
                    await self.play("after_hours")
                self.steps.add(
                    "", "after_hours", "", "holiday" if hours.holiday(now) else "closed", started
                )
                await self.menu_loop("after_hours")
            elif not await self.announcements(await reads[1]):
                await self.menu_loop(self.ctx.menu.start)
        finally:
            for read in reads:
                if not read.done():
                    read.cancel()  # the caller hung up in the welcome, or it is after hours
                elif not read.cancelled() and read.exception() is not None:
                    # Raised above already, or (the announcements, after hours) not needed.
                    logger.debug("IVR read failed: %r", read.exception())
        if not self.agi.hung_up:
            await self.finish()

    def went(self, step: str) -> None:
        """Note a step of the way through the menus (the first PATH_STEPS of them)."""
        if len(self.path) < PATH_STEPS:
            self.path.append(step)

    def path_text(self, sep: str = ">") -> str:
        """The way through the menus, at most PATH_CHARS characters (cut with an ellipsis)."""
        return clip(sep.join(self.path), PATH_CHARS)

    async def finish(self) -> None:
        """Tell the journal which way the caller went through the menus."""
        fields = {"Path": self.path_text() or "-", "Lang": self.lang}
        if self.incident:  # again: a CtiIncident lost with the AMI link is found here
            fields["Incident"] = self.incident
        if self.voicemail:
            fields["Voicemail"] = "1"
        await self.user_event("CtiIvr", **fields)

    async def menu_loop(self, name: str) -> None:
        """Run menus until an action hands the call on.

        Wrong keys are re-prompted `retries` times; a silent caller hears the menu `silences`
        times (once more after the first silence) and then reaches `after_retries`, a person on
        the shipped menus, without a third hearing."""
        wrong = silent = 0
        next_menu: str | None = name
        while next_menu is not None:
            menu = self.ctx.menu.menus[next_menu]
            self.menu_name = menu.name
            if self.pending is not None:  # keyed during the prompt before: acts at once
                key, self.pending = self.pending, None
                self.steps.add(menu.name, menu.prompt, key, "barge-in", time.time())
            else:
                key = await self.ask(
                    menu.prompt,
                    max_digits=1,
                    timeout_s=self.ctx.menu.digit_timeout,
                    also=menu.also.get(self.lang),
                )
            option = menu.options.get(key) if key else None
            if option is None:
                if key:
                    wrong += 1
                    self.pending = await self.play("invalid_choice", ALL_KEYS)
                else:
                    silent += 1
                    if silent < self.ctx.menu.silences:
                        self.pending = await self.play("no_input", ALL_KEYS)
                if wrong >= self.ctx.menu.retries or silent >= self.ctx.menu.silences:
                    self.pending = None
                    self.went(f"{menu.name}:{'retries' if key else 'silence'}")
                    await self.act(menu.after_retries, menu)
                    return
                continue
            self.went(f"{menu.name}:{key}")
            if option.action == Action.REPEAT:
                continue
            wrong = silent = 0
            next_menu = await self.act(option, menu)

    async def act(self, option: Option, menu: Menu) -> str | None:
        """Carry out an option; the next menu's name, or None when the call is handed on."""
        a = option.action
        if a == Action.MENU:
            return option.menu
        if a == Action.LANGUAGE:
            self.lang = next((lg for lg in self.ctx.menu.languages if lg != self.lang), self.lang)
            await self.agi.exec("Set", f"CHANNEL(language)={self.lang}")
            return menu.name
        if a == Action.STATUS:
            return await self.status(menu)
        if a == Action.VOICEMAIL:
            await self.leave_voicemail(option)
            return None
        if a == Action.ACCOUNT:
            await self.account_request(option)
            return None
        if a == Action.HANGUP:
            await self.play("goodbye")
            await self.set_vars(CTI_NEXT="hangup")
            return None
        # REPORT, AGENT, ONCALL: an incident before anyone answers (6.3.1.1).
        await self.identify()
        number = await self.open_incident(option)
        await self.read_number(number)
        oncall = await self.oncall_number() if a == Action.ONCALL else None
        if oncall:
            await self.play("oncall_transfer")
            await self.set_vars(CTI_NEXT="oncall", CTI_ONCALL_NUMBER=oncall)
        else:
            await self.play("transfer_agent")
            await self.to_queue()
        return None

    async def oncall_number(self) -> str | None:
        """Whom the on-call transfer dials: the engineer on the roster now for this language's
        queue; with nobody on the roster, the hours' fallback number (hours.yaml's
        oncall_number), else None (the caller goes to the queue)."""
        queue = self.ctx.menu.queues[self.lang]
        number = await self.ctx.desk.oncall_number(queue)
        if number:
            return number
        desk_hours = await self.ctx.desk.opening_hours()
        hours = desk_hours.hours if desk_hours is not None else self.ctx.hours
        return hours.oncall_number or None

    async def to_queue(self) -> None:
        """Hand the call to the language's queue (recorded from the answer on, where the site
        records that queue: the dialplan starts MixMonitor before Queue())."""
        queue = self.ctx.menu.queues[self.lang]
        if recorded(queue, self.ctx.record_queues):
            # The caller is told before anything is recorded: Mandarin, then English, whatever
            # language they chose (the notice is owed to every caller; no key skips it).
            texts = self.ctx.prompts.texts.get("recording_notice", {})
            for lang in NOTICE_LANGUAGES:
                if lang in texts:
                    await self.agi.stream_file(f"{lang}/{SUBDIR}/recording_notice")
            await self.set_vars(CTI_RECORD="1", CTI_RECORD_DIR=f"{self.ctx.media.asterisk}/calls")
        await self.set_vars(CTI_NEXT="queue", CTI_QUEUE=queue, CTI_LANGUAGE=self.lang)

    # -- account and password requests (6.2) ---------------------------------------------------

    async def account_request(self, option: Option) -> None:
        """Name the account (an employee number; '#' alone: the caller's own). A privileged
        account is refused, with the reason said; the desk routes the request to the
        administrators. Otherwise the request goes to an agent like any other."""
        await self.identify()
        own = self.requester.employee_no if self.requester is not None else ""
        account = await self.ask("account_enter", max_digits=12, timeout_s=6) or own
        privileged = await self.ctx.desk.account_privileged(account) if account else None
        self.went(f"account:{'privileged' if privileged else 'named' if account else 'none'}")
        number = await self.open_incident(option, account=account or None)
        if privileged:
            await self.play("privileged_refused")
            await self.read_number(number)
            await self.play("goodbye")
            await self.set_vars(CTI_NEXT="hangup")
            return
        await self.read_number(number)
        await self.play("transfer_agent")
        await self.to_queue()

    # -- who is calling (6.3.1.3) --------------------------------------------------------------

    async def identify(self) -> None:
        """Ask an unrecognised caller for their employee number (twice at most)."""
        if self.requester is not None:
            return
        prompt = "identify_unknown"
        for _ in range(2):
            digits = await self.ask(prompt, max_digits=12, timeout_s=6)
            if not digits:
                break
            found = await self.ctx.desk.identify_employee(digits)
            if found is not None:
                self.requester = found
                return
            prompt = "identify_again"
        await self.play("identify_skipped")

    # -- the incident --------------------------------------------------------------------------

    async def open_incident(
        self,
        option: Option,
        *,
        announcement: int | None = None,
        recording: str | None = None,
        channel: str = "phone",
        account: str | None = None,
    ) -> str:
        """Record the request and tell the dialplan and the journal its number."""
        started = time.time()
        category = option.category_in(self.lang)
        number = await self.ctx.desk.open_incident(
            NewIncident(
                type=option.type,
                category=category,
                symptom=f"{category}（IVR: {self.path_text(' > ') or '-'}）",
                channel=channel,
                caller_number=self.caller.raw,
                caller_key=self.caller.key,
                requester=self.requester,
                call_uniqueid=self.agi.uniqueid,
                language=self.lang,
                menu_path=self.path_text(),
                announcement_id=announcement,
                recording=recording,
                account=account,
            )
        )
        self.incident = number
        self.steps.add(self.menu_name, "incident", "", number, started)
        if not self.agi.hung_up:  # a voicemail caller may have hung up already
            await self.set_vars(__CTI_INCIDENT=number, CTI_INCIDENT=number)
            await self.user_event("CtiIncident", Number=number)
        logger.info("incident %s opened by the IVR linkedid=%s", number, self.agi.uniqueid)
        return number

    async def read_number(self, number: str) -> None:
        """'Your incident number is 2 6 1 1 2 5 0 4 2', repeatable with *."""
        for _ in range(MAX_REPEATS):
            started = time.time()
            await self.play("incident_created")
            key = await self.agi.say_digits(number, "*")
            if key != "*":
                key = await self.play("incident_repeat", "*")
            if key != "*":
                key = await self.agi.wait_for_digit(2500)
            self.steps.add(self.menu_name, "read_number", key or "", number, started)
            if key != "*":
                return

    # -- status by phone -----------------------------------------------------------------------

    async def status(self, menu: Menu) -> str | None:
        """Hear an incident's state; the requester may confirm or reopen a resolved one."""
        self.menu_name = "status"
        for attempt in range(2):
            number = await self.ask("status_enter", max_digits=14, timeout_s=8)
            st = await self.ctx.desk.incident_status(number) if digits(number) else None
            if st is not None:
                break
            await self.play("status_not_found" if number else "no_input")
            if attempt == 1:
                return menu.name
        else:  # pragma: no cover - the loop returns or breaks
            return menu.name
        await self.play("status_is")
        await self.play(f"state_{st.state}")
        own = self._owns(st.caller_keys)
        if st.state == "resolved":
            if not own:
                await self.play("status_other_caller")
            else:
                key = await self.ask("resolved_confirm", max_digits=1, timeout_s=6)
                by = f"caller {self.caller.raw or 'unknown'} (IVR)"
                if key == "1" and await self.ctx.desk.confirm_closure(st.number, by):
                    await self.play("closed_thanks")
                elif key == "2" and await self.ctx.desk.reopen(st.number, by):
                    await self.play("reopened")
        self.went(f"status:{st.number}")
        key = await self.ask("status_more", max_digits=1, timeout_s=5)
        if key == "3":
            return await self.status(menu)
        if key == "0":
            self.incident = st.number
            await self.set_vars(__CTI_INCIDENT=st.number, CTI_INCIDENT=st.number)
            await self.user_event("CtiIncident", Number=st.number)
            await self.play("transfer_agent")
            await self.to_queue()
            return None
        await self.play("goodbye")
        await self.set_vars(CTI_NEXT="hangup")
        return None

    def _owns(self, keys: frozenset[str]) -> bool:
        if self.caller.key and self.caller.key in keys:
            return True
        if self.requester is not None:
            return f"user:{self.requester.user_id}" in keys
        return False

    # -- announcements (6.4) -------------------------------------------------------------------

    async def announcements(self, active: list[AnnouncementPrompt]) -> bool:
        """Play the announcements in force; True if the caller, affected by an outage, is done."""
        for ann in active:
            prompt = ann.prompts.get(self.lang) or next(iter(ann.prompts.values()), None)
            if prompt is None:
                continue
            started = time.time()
            await self.play("announcement_intro")
            await self.agi.stream_file(prompt, "")
            self.steps.add("", "announcement", "", str(ann.id), started)
            if ann.kind != "outage":
                continue
            key = await self.play("outage_affected", "1") or await self.agi.wait_for_digit(3000)
            if key != "1":
                continue
            self.went(f"outage:{ann.id}")
            await self.identify()
            option = Option(
                Action.REPORT, type="fault", category="已知故障", category_en="Known outage"
            )
            number = await self.open_incident(option, announcement=ann.id)
            await self.read_number(number)
            key = await self.play("outage_linked", "0") or await self.agi.wait_for_digit(4000)
            if key == "0":
                await self.play("transfer_agent")
                await self.to_queue()
            else:
                await self.play("goodbye")
                await self.set_vars(CTI_NEXT="hangup")
            return True
        return False

    # -- voicemail (6.4.2 f) -------------------------------------------------------------------

    async def leave_voicemail(self, option: Option) -> None:
        """Record a message: it becomes an incident with the recording; read its number back."""
        self.voicemail = True
        recording = await record_message(self)
        if recording is None:
            await self.set_vars(CTI_NEXT="hangup")
            return
        number = await self.open_incident(option, recording=recording, channel="voicemail")
        if self.agi.hung_up:
            return
        await self.play("voicemail_saved")
        await self.read_number(number)
        await self.play("goodbye")
        await self.set_vars(CTI_NEXT="hangup")


async def record_message(flow: CallFlow) -> str | None:
    """Record a voicemail; the recording's name (relative to the media folder), or None."""
    host, asterisk = flow.ctx.media.recording(flow.agi.uniqueid.replace("/", "_"))
    host.parent.mkdir(parents=True, exist_ok=True)
    started = time.time()
    await flow.play("voicemail_intro")
    # Said now: a caller who hangs up to end the message leaves no chance to say it later.
    await flow.finish()
    with contextlib.suppress(AgiHangup):  # hanging up ends the message; it is still kept
        await flow.agi.record_file(asterisk, "wav", "#", 180_000, 6)
    saved = host.exists() and host.stat().st_size > 1000
    flow.steps.add(
        "voicemail", "record", "", f"{host.stat().st_size if host.exists() else 0} bytes", started
    )
    return f"recordings/{host.name}" if saved else None
