"""A call that began and ended in the IVR during an outage, rebuilt from the IVR's steps."""

from cti.live.model import LiveCall
from cti.reconcile import IvrStepSeen, apply_ivr, call_from_ivr

T = 1_800_000_000.0


def step(at: float, step: str, *, digits: str = "", result: str = "", route: str = "ivr",
         menu: str = "", seconds: float = 1.0) -> IvrStepSeen:  # fmt: skip
    return IvrStepSeen(T + at, route, menu, step, digits, result, seconds)


def test_a_voicemail_left_during_the_outage() -> None:
    steps = [
        step(0, "lookup", digits="13800138000", result="E1001", seconds=0.1),
        step(1, "after_hours", result="closed", seconds=6),
        step(8, "incident", result="261130007", menu="after_hours", seconds=0.2),
        step(9, "record", result="48000 bytes", route="ivr", menu="voicemail", seconds=12),
    ]
    call = call_from_ivr("u-1", list(reversed(steps)))  # order does not matter
    row = call.to_row(T + 60)
    assert row["outcome"] == "voicemail" and row["source"] == "reconciled"
    assert row["caller_number"] == "13800138000" and row["incident_number"] == "261130007"
    assert row["arrived_at"].timestamp() == T and row["ended_at"].timestamp() == T + 21
    assert row["queued_at"] is None and row["ivr_entered_at"].timestamp() == T


def test_a_caller_who_hung_up_in_the_menu_and_a_recording_too_short_to_keep() -> None:
    steps = [step(0, "lookup", digits="13900139000", result="unknown"),
             step(2, "record", result="320 bytes", menu="voicemail")]  # fmt: skip
    row = call_from_ivr("u-2", steps).to_row(T + 60)
    assert row["outcome"] == "ended_in_ivr" and row["incident_number"] is None


def test_what_was_observed_is_kept() -> None:
    call = LiveCall("u-3", "u-3", "PJSIP/x", T - 5, caller_number="10086")
    call.ivr_entered_at, call.incident_number = T - 4, "261130001"
    apply_ivr(call, [step(0, "incident", result="261130002"), step(3, "main_menu")])
    assert call.ivr_entered_at == T - 4 and call.incident_number == "261130001"
    assert call.ivr_left_at == T + 4 and call.inferred == {"ivr_left_at"}
    survey_only = LiveCall("u-4", "u-4", "PJSIP/x", T)
    apply_ivr(survey_only, [step(0, "survey", route="survey", digits="5")])
    assert survey_only.ivr_entered_at is None and not survey_only.inferred
