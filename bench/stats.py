"""Figures the benchmarks print."""

import os


def pct(values: list[float], p: float) -> float:
    """The p-quantile of `values` (seconds) in milliseconds; NaN for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")


def loadavg() -> str:
    """The machine's load average (1, 5, 15 minutes): the figures are only as quiet as it is."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())
