"""Finite sets of the call domain, as StrEnums."""

from enum import StrEnum


class CallOutcome(StrEnum):
    """How a call ended, as the metrics count it."""

    ANSWERED = "answered"  # an agent answered from the queue
    ABANDONED = "abandoned"  # the caller hung up while waiting in the queue
    QUEUE_TIMEOUT = "queue_timeout"  # Queue() gave up (QUEUESTATUS=TIMEOUT)
    LEFT_EMPTY = "left_empty"  # no agent logged in (JOINEMPTY/LEAVEEMPTY/...UNAVAIL)
    QUEUE_FULL = "queue_full"  # the queue's maxlen was reached
    ENDED_IN_IVR = "ended_in_ivr"  # never reached a queue
    VOICEMAIL = "voicemail"  # left a voicemail instead of waiting
    OVERFLOWED = "overflowed"  # moved out of the queue by an overflow rule
    TRANSFERRED = "transferred"  # sent by the IVR to the on-call engineer (out of hours)
    DROPPED = "dropped"  # ended while Asterisk was down or unreachable; nothing says how


class OfferResult(StrEnum):
    """What became of one offer of a queue call to an agent."""

    RINGING = "ringing"
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"  # AgentRingNoAnswer: rang out
    REJECTED = "rejected"  # AgentDump: the agent's phone hung up while ringing
    LOST = "lost"  # the call was answered elsewhere or ended while ringing


class RecordSource(StrEnum):
    """Where a call record's data came from."""

    AMI = "ami"  # observed live from Asterisk's events
    RECONCILED = "reconciled"  # completed or created after an outage from queue_log / snapshots


# QUEUESTATUS values (app_queue) and the outcome each one means.
QUEUE_STATUS_OUTCOME: dict[str, CallOutcome] = {
    "TIMEOUT": CallOutcome.QUEUE_TIMEOUT,
    "JOINEMPTY": CallOutcome.LEFT_EMPTY,
    "LEAVEEMPTY": CallOutcome.LEFT_EMPTY,
    "JOINUNAVAIL": CallOutcome.LEFT_EMPTY,
    "LEAVEUNAVAIL": CallOutcome.LEFT_EMPTY,
    "FULL": CallOutcome.QUEUE_FULL,
}
