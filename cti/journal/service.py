"""The journal service: the only writer of `calls`. It writes the tracker's changes and each
call's after-call work (a WrapupEnded event on the bus), and rebuilds state after every gap.

After a login (or an overflowed event queue) it asks Asterisk what is live now (CoreShowChannels,
QueueStatus), reads what queue_log and Asterisk's CDRs recorded since we last looked, and
settles every call: still live calls continue, calls that ended unseen are completed from
queue_log and their CDR, and calls we never saw are created from queue_log, the IVR's steps and
the CDRs, one record per call however many of them saw it. Each such call says so (source
"reconciled", and which fields were inferred).
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    StatementError,
)
from sqlalchemy.ext.asyncio import AsyncSession

from cti.ami import actions
from cti.ami.client import AmiClient
from cti.ami.events import AmiEvent, LinkDown
from cti.ami.responses import CoreShowChannel, QueueEntry
from cti.asterisks import DEFAULT_ASTERISK
from cti.cdr import CdrCall, CdrTable, cdr_calls
from cti.db import SessionMaker
from cti.errors import ConfigError
from cti.journal import repo
from cti.live.bus import WrapupEnded
from cti.live.model import LiveCall, to_dt
from cti.live.tracker import CallTracker, mark_unseen
from cti.queuelog import Position, QueueLogEntry, QueueLogSource
from cti.reconcile import (
    IvrStepSeen,
    apply_cdr,
    apply_ivr,
    apply_queue_log,
    call_from_cdr,
    call_from_ivr,
    call_from_queue_log,
    finish_gone,
    group_by_call,
)

logger = logging.getLogger(__name__)

META_LAST_EVENT = "last_event_at"
META_QUEUE_LOG = "queue_log_position"
META_CDR = "cdr_position"
# How long a queue_log line stays re-readable after we pass it (see advance_position).
POSITION_LAG = 30.0
# IVR steps this long before an outage's start are read too: a call that entered the IVR just
# before the link dropped (its record, if we had one, excludes it).
IVR_LOOKBACK = 300.0
# At the first start on a database, how much of queue_log's end the first resync looks at, for
# the calls already live then (what queue_log knows of a call answered before we started).
FIRST_START_LOOKBACK = 1 << 20
# How many refused calls /healthz lists (the count covers them all).
REJECTED_SHOWN = 20
# The writer's share of the time at most: after a flush that took d seconds, the next one waits
# d * (1 / WRITE_SHARE - 1) if that is longer than the flush interval, but never past
# MAX_FLUSH_GAP. A call's row is written once per flush however many events changed it, so when
# events pour in (or the machine is busy and every flush slower) the batches grow instead of the
# flushes multiplying: the writes' cost per event does not grow with the wall time a burst takes.
WRITE_SHARE = 0.1
MAX_FLUSH_GAP = 2.0


def _database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or is busy (locked, connection lost): no row is at
    fault, and everything is kept for the next attempt."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | DisconnectionError | OSError)


def _row_refused(exc: BaseException) -> bool:
    """The database (or the value's conversion on the way) refused this row's values."""
    if isinstance(exc, IntegrityError | DataError):
        return True
    return isinstance(exc, StatementError) and not isinstance(exc, DBAPIError)


class JournalService:
    """Owns the journal writer loop and the reconciliation after gaps."""

    def __init__(
        self,
        sessions: SessionMaker,
        tracker: CallTracker,
        reader: QueueLogSource | None,
        *,
        flush_interval: float = 0.2,
        call_contexts: frozenset[str] = frozenset(),
        cdr: CdrTable | None = None,
        asterisk: str = DEFAULT_ASTERISK,
    ) -> None:
        self.sessions = sessions
        # The Asterisk whose calls this journal writes and whose queue_log `reader` reads.
        self.asterisk = asterisk
        # journal_meta keys of this Asterisk (the default one keeps the keys it always had).
        suffix = "" if asterisk == DEFAULT_ASTERISK else f":{asterisk}"
        self.meta_last_event = META_LAST_EVENT + suffix
        self.meta_queue_log = META_QUEUE_LOG + suffix
        self.meta_cdr = META_CDR + suffix
        self.tracker = tracker
        self.reader = reader
        # Asterisk's CDR table, and the id up to which its rows were looked at.
        self.cdr = cdr
        self.cdr_position: int | None = None
        self._lagging_cdr: tuple[float, int] | None = None
        self.flush_interval = flush_interval
        self.call_contexts = call_contexts
        self.outage_started_at: float | None = None
        self.position: Position | None = None
        self._lagging_position: tuple[float, Position] | None = None
        self.last_flush_at: float | None = None
        self.flush_errors = 0
        # Rows written so far and how long the last flush took (for /metrics).
        self.flushed_rows = 0
        self.last_flush_seconds = 0.0
        # How long the last flush that wrote took (0 after one with nothing to write).
        self._spacing = 0.0
        # Calls whose row the database refused: how many times, and the latest (uniqueid -> when,
        # why), for /healthz.
        self.rejected_rows = 0
        self.rejected: dict[str, tuple[float, str]] = {}
        self.reconciled_total = 0
        self._acw: dict[str, float] = {}  # call uniqueid -> after-call work seconds, to write
        # The first start on a database: where the first resync reads queue_log from, and when
        # we started (a call that ended before that is history, not ours to import).
        self._lookback: Position | None = None
        self._first_start: float | None = None
        self._unsubscribe = tracker.bus.subscribe(WrapupEnded, self._wrapup_ended)

    def _wrapup_ended(self, event: WrapupEnded) -> None:
        self._acw[event.uniqueid] = event.seconds

    def close(self) -> None:
        """Stop listening to the bus."""
        self._unsubscribe()

    # -- writing ---------------------------------------------------------------------------------

    async def flush(self) -> int:
        """Write every changed call and pending after-call work, in one transaction.

        If the database refuses that batch, the calls are written one by one: a call whose row
        it refuses is set aside (counted and listed in /healthz, and tried again when the call
        changes), the others are written, so one call can never stop the journal. When the
        database itself is unavailable, everything stays pending for the next attempt.
        """
        calls = self.tracker.take_dirty()
        acw, self._acw = self._acw, {}
        if not calls and not acw:
            self._spacing = 0.0
            return 0
        now = time.time()
        began = time.perf_counter()
        rows: list[tuple[LiveCall, dict[str, Any]]] = []
        for call in calls:
            try:
                rows.append((call, call.to_row(now)))
            except Exception as exc:  # a value no row can hold (a timestamp out of range)
                self._reject(call.uniqueid, exc)
        meta = {}
        if self.tracker.last_event_at is not None:
            meta[self.meta_last_event] = repr(self.tracker.last_event_at)
        try:
            try:
                await self._write([row for _, row in rows], meta, acw)
            except Exception as exc:
                if not rows or _database_unavailable(exc):
                    raise
                logger.warning("journal batch of %d calls refused (%s): writing them one by one",
                               len(rows), exc)  # fmt: skip
                await self._write_apart(rows)
                await self._write([], meta, acw)
        except BaseException as exc:
            # Cancelled too (a stop while a flush is under way): the writer's last flush, which
            # follows, writes these calls.
            if isinstance(exc, Exception):
                self.flush_errors += 1
            self.tracker.mark_dirty(call for call, _ in rows)
            self._acw = {**acw, **self._acw}
            raise
        self.last_flush_at = now
        self.flushed_rows += len(rows)
        self.last_flush_seconds = self._spacing = time.perf_counter() - began
        return len(rows)

    async def _write(
        self, rows: list[dict[str, Any]], meta: dict[str, str], acw: dict[str, float]
    ) -> None:
        async with self.sessions.begin() as session:
            if rows:
                await repo.upsert_calls(session, rows)
            await repo.set_meta(session, meta)
            for uniqueid, seconds in acw.items():
                await repo.set_acw(session, uniqueid, seconds, self.asterisk)

    async def _write_apart(self, rows: list[tuple[LiveCall, dict[str, Any]]]) -> None:
        """Each row in a transaction of its own; the refused ones are set aside. Raises (and
        writes nothing more) when the database, not a row, is the trouble: it is unavailable, or
        it refused every row for a reason that is not known to be the row's."""
        refused: list[tuple[str, Exception]] = []
        written = 0
        for call, row in rows:
            try:
                async with self.sessions.begin() as session:
                    await repo.upsert_calls(session, [row])
                written += 1
            except Exception as exc:
                if _database_unavailable(exc):
                    raise
                if _row_refused(exc) or written:
                    self._reject(call.uniqueid, exc)
                else:
                    refused.append((call.uniqueid, exc))
        if refused and not written:
            raise refused[0][1]
        for uniqueid, error in refused:  # others were written after them: these rows are at fault
            self._reject(uniqueid, error)

    def _reject(self, uniqueid: str, exc: Exception) -> None:
        self.rejected_rows += 1
        self.rejected.pop(uniqueid, None)
        self.rejected[uniqueid] = (time.time(), f"{type(exc).__name__}: {str(exc)[:300]}")
        while len(self.rejected) > REJECTED_SHOWN:
            del self.rejected[next(iter(self.rejected))]
        logger.error("journal: the database refused the call's row, set aside linkedid=%s: %s",
                     uniqueid, exc)  # fmt: skip

    def next_flush_in(self) -> float:
        """Seconds from the end of the last flush to the next: the flush interval, or longer
        after a slow flush (see WRITE_SHARE)."""
        spaced = self._spacing * (1 / WRITE_SHARE - 1)
        return max(self.flush_interval, min(spaced, MAX_FLUSH_GAP))

    async def run_writer(self, connected: Callable[[], bool]) -> None:
        """Flush every interval (longer after a slow flush) until cancelled, then once more.

        A cancellation (a stop) lets the round under way finish first: cancelled in the middle
        of its transaction, a flush would lose its batch, and on SQLite the transaction could
        keep the database's write lock from the last flush."""
        try:
            while True:
                await asyncio.sleep(self.next_flush_in())
                round_ = asyncio.ensure_future(self._write_round(connected))
                try:
                    await asyncio.shield(round_)
                except asyncio.CancelledError:
                    await asyncio.wait([round_])
                    raise
        finally:
            try:
                await asyncio.shield(self.flush())
            except Exception:
                logger.exception("final journal flush failed")

    async def _write_round(self, connected: Callable[[], bool]) -> None:
        try:
            await self.flush()
            if connected() and self.outage_started_at is None:
                await self.advance_position()
        except Exception:
            logger.exception("journal flush failed; will retry")

    async def advance_position(self) -> None:
        """Move the saved queue_log position forward, lagging by POSITION_LAG seconds, so that a
        line whose AMI event was still in flight when the link dropped is read again; and sweep
        the CDRs written meanwhile (see sweep_cdr)."""
        if self.cdr is not None:
            try:
                await self.sweep_cdr()
            except Exception as exc:  # the CDR database unreachable: the next sweep catches up
                logger.warning("CDR sweep failed (%s); will retry", exc)
        if self.reader is None:
            return
        now = time.monotonic()
        if self._lagging_position is None:
            end = await self.reader.end()
            if end is not None:
                self._lagging_position = (now, end)
            return
        since, pos = self._lagging_position
        if now - since < POSITION_LAG:
            return
        self._lagging_position = None
        if (
            self.position is None
            or pos.inode != self.position.inode
            or pos.offset > self.position.offset
        ):
            self.position = pos
            async with self.sessions.begin() as session:
                await repo.set_meta(session, {self.meta_queue_log: pos.encode()})

    async def sweep_cdr(self) -> int:
        """While connected: every POSITION_LAG seconds, look at the CDRs written up to the
        previous sweep and record any marked call the journal still lacks (a call that hung up
        while a resync was under way, whose CDR came in after it; a call the events missed).
        Returns the calls recorded."""
        assert self.cdr is not None
        now = time.monotonic()
        if self._lagging_cdr is None:
            self._lagging_cdr = (now, await self.cdr.end())
            return 0
        since, upto = self._lagging_cdr
        if now - since < POSITION_LAG:
            return 0
        self._lagging_cdr = (now, await self.cdr.end())
        start = self.cdr_position
        if start is None or upto <= start:
            await self._save_cdr_position(max(upto, start or 0))
            return 0
        records, _ = await self.cdr.read_since(start)
        calls = cdr_calls(r for r in records if r.id <= upto)
        made = 0
        if calls:
            # Written calls only: the ones still live or waiting for the writer are known.
            await self.flush()
            missing = set(calls) - set(self.tracker.calls)
            async with self.sessions() as session:
                known = await repo.known_calls(
                    session, missing | {c.linkedid for c in calls.values()}, self.asterisk
                )
            for uid in sorted(missing, key=lambda u: calls[u].started):
                if uid in known or calls[uid].linkedid in known:
                    continue
                self.tracker.end_reconciled(call_from_cdr(calls[uid]))
                made += 1
        await self._save_cdr_position(upto)
        if made:
            self.reconciled_total += made
            await self.flush()
            logger.info("CDR sweep: %d calls only the CDRs knew", made)
        return made

    async def _save_cdr_position(self, position: int) -> None:
        self.cdr_position = position
        async with self.sessions.begin() as session:
            await repo.set_meta(session, {self.meta_cdr: str(position)})

    async def _read_cdrs(self) -> tuple[dict[str, CdrCall], int | None]:
        """The calls in the CDRs written since we last looked, and the new position. Unreadable
        (the CDR database down), nothing, and the position stays: the sweep catches up later.
        Never read before (no position yet): nothing, and from now on."""
        if self.cdr is None:
            return {}, None
        try:
            if self.cdr_position is None:
                return {}, await self.cdr.end()
            records, position = await self.cdr.read_since(self.cdr_position)
        except ConfigError:
            raise
        except Exception as exc:
            logger.warning("CDRs unreadable (%s): calls only they know wait for the sweep", exc)
            return {}, self.cdr_position
        return cdr_calls(records), position

    # -- start-up and gaps -----------------------------------------------------------------------

    async def resume(self) -> None:
        """At start-up: take back the calls a previous process left open, note the gap."""
        async with self.sessions.begin() as session:
            open_rows = await repo.open_calls(session, self.asterisk)
            last = await repo.get_meta(session, self.meta_last_event)
            self.position = Position.decode(await repo.get_meta(session, self.meta_queue_log))
            if self.position is None and self.reader is not None:
                # First start on this database: history before now is not ours to import, but
                # the first resync reads a little of it for the calls live at that moment.
                self.position = await self.reader.end()
                self._lookback = await self.reader.tail(FIRST_START_LOOKBACK)
                self._first_start = time.time()
                if self.position is not None:
                    await repo.set_meta(session, {self.meta_queue_log: self.position.encode()})
            raw_cdr = await repo.get_meta(session, self.meta_cdr)
            if raw_cdr is not None and raw_cdr.isdigit():
                self.cdr_position = int(raw_cdr)
            elif self.cdr is not None:
                # First start with CDRs: the table's history is not ours to import. (A table
                # that lacks our columns stops the start here, with a ConfigError.)
                try:
                    self.cdr_position = await self.cdr.end()
                except ConfigError:
                    raise
                except Exception as exc:  # unreachable now: from the first resync that reads it
                    logger.warning("CDR table unreadable at start (%s)", exc)
                if self.cdr_position is not None:
                    await repo.set_meta(session, {self.meta_cdr: str(self.cdr_position)})
            for row in open_rows:
                self.tracker.adopt(LiveCall.from_row(row))
            if last is not None:
                started = float(last)
                self.outage_started_at = started
                await repo.start_outage(
                    session, to_dt(started), "CTI server was not running", self.asterisk
                )
        if open_rows:
            logger.info("resumed %d calls left open by the previous run", len(open_rows))

    async def link_down(self, event: LinkDown) -> None:
        """The AMI link dropped: remember since when we are blind."""
        mark_unseen(self.tracker)
        started = self.tracker.last_event_at or event.timestamp
        if self.outage_started_at is None:
            self.outage_started_at = started
            async with self.sessions.begin() as session:
                await repo.start_outage(session, to_dt(started), event.reason, self.asterisk)

    async def resync(self, client: AmiClient, drain: Callable[[], list[AmiEvent]]) -> int:
        """Rebuild live state from Asterisk and settle every call; returns calls reconciled.

        `drain` applies the events that arrived before the snapshot completed and returns any
        link markers among them (a LinkDown aborts the resync).
        """
        started = time.monotonic()
        had_outage = self.outage_started_at is not None
        outage_start = self.outage_started_at or self.tracker.last_event_at or time.time()
        mark_unseen(self.tracker)
        chans = await actions.core_show_channels(client)
        qstat = await actions.queue_status(client)
        snap_time = time.time()
        if any(isinstance(m, LinkDown) for m in drain()):
            return 0
        channels = {c.uniqueid: c for c in chans}
        waiting = {q.uniqueid: q for q in qstat.entries}
        entries: list[QueueLogEntry] = []
        new_pos = self.position
        since, self._lookback = self._lookback or self.position, None
        if self.reader is not None:
            entries, new_pos = await self.reader.read_since(since)
        by_call = group_by_call(entries)
        cdrs, new_cdr = await self._read_cdrs()

        reconciled = 0
        settled: set[str] = set()
        for call in list(self.tracker.calls.values()):
            settled.add(call.uniqueid)
            if call.uniqueid in channels:
                if not call.seen_since_link:
                    apply_queue_log(call, by_call.get(call.uniqueid, []))
                    self._from_snapshot(call, waiting.get(call.uniqueid), snap_time)
                    self.tracker.mark_dirty([call])
            elif not call.seen_since_link:
                finish_gone(call, by_call.get(call.uniqueid, []), outage_start,
                            cdrs.get(call.uniqueid))  # fmt: skip
                self.tracker.end_reconciled(call)
                reconciled += 1

        unknown = [cid for cid in by_call if cid not in settled]
        async with self.sessions() as session:
            done = await repo.finished_uniqueids(session, unknown, self.asterisk)
            ivr = await self._ivr_steps(session, outage_start) if had_outage else {}
        for cid in unknown:
            if cid in done:
                continue
            lines = by_call[cid]
            if cid not in channels and self._before_first_start(lines):
                continue
            call = call_from_queue_log(lines)
            apply_ivr(call, ivr.get(cid, []))
            if cid in channels:
                if cid in cdrs:
                    apply_cdr(call, cdrs[cid])
                self._adopt_live(call, channels[cid], waiting.get(cid), snap_time)
            else:
                finish_gone(call, lines, float(lines[0].time), cdrs.get(cid))
                self.tracker.end_reconciled(call)
            reconciled += 1

        reconciled += await self._unqueued(ivr, cdrs, settled | set(by_call) | set(channels))

        for uid, chan in channels.items():
            if uid not in self.tracker.calls and self._looks_like_call(uid, chan, waiting):
                call = LiveCall(
                    uniqueid=uid,
                    linkedid=chan.linkedid,
                    channel=chan.channel,
                    arrived_at=snap_time - chan.duration,
                    caller_number=chan.caller_num,
                    caller_name=chan.caller_name,
                    dialled_number="",
                    seen_since_link=False,
                )
                call.infer("arrived_at")
                self._adopt_live(call, chan, waiting.get(uid), snap_time)
                reconciled += 1

        self.position = new_pos
        self.cdr_position = new_cdr
        self._lagging_cdr = None
        self.outage_started_at = None
        await self.flush()
        async with self.sessions.begin() as session:
            if new_pos is not None:
                await repo.set_meta(session, {self.meta_queue_log: new_pos.encode()})
            if new_cdr is not None:
                await repo.set_meta(session, {self.meta_cdr: str(new_cdr)})
            await repo.end_outage(session, to_dt(snap_time), reconciled, self.asterisk)
        self.reconciled_total += reconciled
        logger.info(
            "resync: %d live channels, %d waiting, %d queue_log lines, %d CDR calls,"
            " %d reconciled in %.2fs",
            len(channels),
            len(waiting),
            len(entries),
            len(cdrs),
            reconciled,
            time.monotonic() - started,
        )
        return reconciled

    async def _ivr_steps(self, session: AsyncSession, since: float) -> dict[str, list[IvrStepSeen]]:
        """The IVR's steps since a little before the outage began, by call."""
        rows = await repo.ivr_steps_since(session, to_dt(since - IVR_LOOKBACK), self.asterisk)
        by_call: dict[str, list[IvrStepSeen]] = {}
        for r in rows:
            seen = IvrStepSeen(
                r.at.timestamp(), r.route, r.menu, r.step, r.digits, r.result, r.seconds
            )
            by_call.setdefault(r.call_uniqueid, []).append(seen)
        return by_call

    async def _unqueued(
        self, ivr: dict[str, list[IvrStepSeen]], cdrs: dict[str, CdrCall], seen: set[str]
    ) -> int:
        """Calls that never reached a queue and ended while we were not listening: queue_log
        never saw them, the snapshot no longer has them. The IVR's own steps are their record
        when the IVR saw them, merged with their CDR; the CDR alone when our IVR was
        unreachable too. One record per call: a call already in the journal (by its Uniqueid or
        its Linkedid) or still live is left alone."""
        from_ivr = {uid for uid, steps in ivr.items()
                    if any(s.route in ("ivr", "voicemail") for s in steps)}  # fmt: skip
        candidates = (from_ivr | set(cdrs)) - seen - set(self.tracker.calls)
        if not candidates:
            return 0
        if cdrs:
            await self.flush()  # calls that ended under our eyes are in the journal before we look
        linked = {cdrs[uid].linkedid for uid in candidates if uid in cdrs}
        async with self.sessions() as session:
            known = await repo.known_calls(session, candidates | linked, self.asterisk)
        made = 0
        for uid in sorted(candidates):
            cdr = cdrs.get(uid)
            if uid in known or (cdr is not None and cdr.linkedid in known):
                continue
            if uid in from_ivr:
                call = call_from_ivr(uid, ivr[uid], cdr)
            else:
                assert cdr is not None
                call = call_from_cdr(cdr)
            self.tracker.end_reconciled(call)
            made += 1
        return made

    def _before_first_start(self, lines: list[QueueLogEntry]) -> bool:
        """A call queue_log shows ending before this database's first start (not ours)."""
        return self._first_start is not None and float(lines[-1].time) + 1 <= self._first_start

    def _looks_like_call(
        self, uid: str, chan: CoreShowChannel, waiting: dict[str, QueueEntry]
    ) -> bool:
        # The first channel of its call (Uniqueid == Linkedid) somewhere in the inbound flow.
        if chan.linkedid != uid:
            return False
        return (
            uid in waiting
            or chan.context in self.call_contexts
            or chan.application in ("Queue", "AGI")
        )

    def _adopt_live(
        self, call: LiveCall, chan: CoreShowChannel, entry: QueueEntry | None, snap_time: float
    ) -> None:
        call.channel = call.channel or chan.channel
        call.linkedid = chan.linkedid or call.linkedid
        self._from_snapshot(call, entry, snap_time)
        self.tracker.adopt(call)
        self.tracker.mark_dirty([call])

    @staticmethod
    def _from_snapshot(call: LiveCall, entry: QueueEntry | None, snap_time: float) -> None:
        if entry is not None and call.answered_at is None:
            call.queue = entry.queue or call.queue
            if call.in_queue_since is None:
                call.in_queue_since = snap_time - entry.wait
                call.infer("queue_join")
            if call.queued_at is None:
                call.queued_at = snap_time - entry.wait
                call.infer("queued_at")
        call.rebuild_state()
