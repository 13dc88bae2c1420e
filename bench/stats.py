"""Figures the benchmarks print."""


def pct(values: list[float], p: float) -> float:
    """The p-quantile of `values` (seconds) in milliseconds; NaN for no values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")
