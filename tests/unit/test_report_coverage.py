"""The coverage statement's count of calls queue_log saw in a period, read by bisection and line
by line (reports/coverage.py), against a plain scan of the whole file."""

import random
from pathlib import Path

from reports.coverage import MAX_LINE, queue_log_seen

DAY = 1_763_568_000.0  # 2025-11-19 16:00 UTC, a midnight in Shanghai


def _line(at: float, callid: str, event: str = "ENTERQUEUE") -> str:
    return f"{int(at)}|{callid}|helpdesk|NONE|{event}||13800138000|1\n"


def _plain(lines: list[str], lo: float, hi: float) -> int:
    seen = set()
    for line in lines:
        parts = line.rstrip("\n").split("|")
        if len(parts) >= 5 and parts[4] == "ENTERQUEUE" and lo <= int(parts[0]) < hi:
            seen.add(parts[1])
    return len(seen)


def test_agrees_with_a_plain_scan_wherever_the_period_lies(tmp_path: Path) -> None:
    rng = random.Random(11)
    t, lines = DAY - 30 * 86400, []
    for i in range(60_000):
        t += rng.uniform(0, 90)
        jitter = rng.uniform(-120, 0)  # lines a little out of order, as clock steps make them
        lines.append(_line(t + jitter, f"c{i}", rng.choice(["ENTERQUEUE", "CONNECT", "ABANDON"])))
    log = tmp_path / "queue_log"
    log.write_text("".join(lines))
    first, last = int(lines[0].split("|")[0]), int(lines[-1].split("|")[0])
    for lo in (first - 86400, first, DAY - 20 * 86400, DAY - 86400 * 7, last - 3600, last + 10):
        for length in (3600.0, 86400.0, 7 * 86400.0):
            got = queue_log_seen(log, lo, lo + length)
            assert got is not None and got.unreadable == 0
            assert got.offered == _plain(lines, lo, lo + length), (lo, length)


def test_bad_and_unfinished_lines(tmp_path: Path) -> None:
    log = tmp_path / "queue_log"
    body = [_line(DAY + 1, "a"), "inf|b|q|a|ENTERQUEUE\n", "\n", "x" * (3 * MAX_LINE) + "\n",
            _line(DAY + 2, "c"), "nan|d|q|a|ENTERQUEUE\n"]  # fmt: skip
    log.write_text("".join(body) + _line(DAY + 3, "e").rstrip("\n"))  # being written now
    got = queue_log_seen(log, DAY, DAY + 86400)
    assert got is not None and (got.offered, got.unreadable) == (2, 3)
    assert queue_log_seen(tmp_path / "missing", DAY, DAY + 1) is None
    (tmp_path / "empty").write_text("")
    empty = queue_log_seen(tmp_path / "empty", DAY, DAY + 1)
    assert empty is not None and (empty.offered, empty.unreadable) == (0, 0)
