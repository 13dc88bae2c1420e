"""Queue back-up alerts (6.3.1.4): one per peak, to the lead's wallboard (over the bus) and IM,
recorded in `backup_alerts` with the worst value each rule reached."""

import logging
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update

from cti.db import SessionMaker
from cti.live.bus import BackupCleared, BackupRaised, Bus
from cti.routing.delivery import ImDelivery
from cti.routing.im import Message
from cti.routing.models import BackupAlert
from cti.routing.rules import Measure, QueueSnapshot

logger = logging.getLogger(__name__)

# What the rules measure, in words for the lead (the IM message and the log).
RULE_WORDS: dict[str, tuple[str, str]] = {
    Measure.WAITING_CALLS: ("等待来电", "callers waiting"),
    Measure.LONGEST_WAIT: ("最长等待(秒)", "longest wait (s)"),
    Measure.WAITING_PER_READY_AGENT: ("每名就绪坐席的等待来电", "callers waiting per ready agent"),
    Measure.NO_AGENT_READY: ("无就绪坐席", "no agent ready"),
    Measure.PREDICTED_WAIT: ("预计等待(秒)", "predicted wait (s)"),
}


def finite(value: float) -> float | None:
    """A rule's value for people: None where it is infinite (e.g. waiting per ready agent with
    nobody ready, which the 'no agent ready' rule says in words)."""
    return None if value == float("inf") else round(value, 1)


def describe(rules: dict[str, float | None], lang: str) -> str:
    """'callers waiting 7, longest wait (s) 95' in the lead's language."""
    i = 0 if lang == "zh" else 1
    parts = []
    for key, value in rules.items():
        words = RULE_WORDS.get(key, (key, key))[i]
        if key == Measure.NO_AGENT_READY:
            parts.append(words)
        elif value is None:
            parts.append(f"{words} ∞")
        else:
            parts.append(f"{words} {value:g}")
    return ", ".join(parts)


class AlertService:
    """Raises and clears back-up alerts."""

    def __init__(
        self,
        sessions: SessionMaker,
        bus: Bus,
        delivery: ImDelivery,
        channels: tuple[str, ...],
        public_url: str,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.delivery = delivery
        self.channels = channels
        self.public_url = public_url
        self.alert_ids: dict[str, int] = {}
        self.peaks: dict[str, dict[str, float]] = {}
        self._shown: dict[str, dict[str, float | None]] = {}

    async def raise_(
        self, queue: str, tripped: dict[Measure, float], snap: QueueSnapshot, since: float
    ) -> None:
        """A queue became backed up: record it, tell the wallboard and the lead's IM channels."""
        rules = {m.value: finite(v) for m, v in tripped.items()}
        self.peaks[queue] = {k: v for k, v in rules.items() if v is not None}
        async with self.sessions.begin() as s:
            alert = BackupAlert(
                queue=queue, raised_at=datetime.now(UTC), rules=dict(rules), notified=[]
            )
            s.add(alert)
            await s.flush()
            self.alert_ids[queue] = alert.id
        logger.warning("queue %s backed up: %s", queue, describe(rules, "en"))
        self._show(queue, rules, since)
        data: dict[str, Any] = {
            "queue": queue,
            "waiting": snap.waiting,
            "longest_wait": snap.longest_wait,
            "ready": snap.ready,
            "rules": rules,
        }
        msg = Message(
            "backup_alert",
            f"服务台排队积压 / Queue backed up: {queue}",
            (
                f"等待 waiting: {snap.waiting}",
                f"最长等待 longest wait: {int(snap.longest_wait)} s",
                f"就绪坐席 ready agents: {snap.ready}",
                f"触发 tripped: {describe(rules, 'zh')} / {describe(rules, 'en')}",
            ),
            f"{self.public_url}/wallboard",
            "打开大屏 Open the wallboard",
            data,
        )
        notified = await self.delivery.send(self.channels, msg)
        async with self.sessions.begin() as s:
            await s.execute(
                update(BackupAlert)
                .where(BackupAlert.id == self.alert_ids[queue])
                .values(notified=notified)
            )

    def still(self, queue: str, tripped: dict[Measure, float], since: float) -> None:
        """The queue stays backed up: keep the peaks, and the banner in step with the rules."""
        rules = {m.value: finite(v) for m, v in tripped.items()}
        peak = self.peaks.setdefault(queue, {})
        for key, value in rules.items():
            if value is not None:
                peak[key] = max(peak.get(key, 0.0), value)
        if rules != self._shown.get(queue):
            self._show(queue, rules, since)

    def _show(self, queue: str, rules: dict[str, float | None], since: float) -> None:
        self._shown[queue] = rules
        self.bus.publish(BackupRaised(queue, since, dict(rules), self.alert_ids.get(queue)))

    async def clear(self, queue: str) -> None:
        """The queue is back to normal."""
        alert_id = self.alert_ids.pop(queue, None)
        peak = self.peaks.pop(queue, {})
        self._shown.pop(queue, None)
        if alert_id is not None:
            async with self.sessions.begin() as s:
                await s.execute(
                    update(BackupAlert)
                    .where(BackupAlert.id == alert_id)
                    .values(cleared_at=datetime.now(UTC), rules=peak)
                )
        self.bus.publish(BackupCleared(queue, dict(peak)))
        logger.warning("queue %s no longer backed up", queue)
        await self.delivery.send(
            self.channels,
            Message(
                "backup_cleared",
                f"排队已恢复正常 / Queue back to normal: {queue}",
                (),
                None,
                "",
                {"queue": queue, "peak": peak},
            ),
        )
