"""docs/metrics.md from reports/cards.yaml: `python -m reports.docs > docs/metrics.md`."""

from reports.metrics import CARDS


def metrics_markdown() -> str:
    """The metric cards as Markdown."""
    out = [
        "# Metrics (Q/SY 1331.2-2010 clause 7)",
        "",
        "Generated from `reports/cards.yaml` (`python -m reports.docs > docs/metrics.md`);",
        "every report prints the same cards in its footer. Thresholds T (service level) and S",
        "(short abandon) are",
        "`CTI_REPORT_SL_SECONDS` and `CTI_REPORT_SHORT_ABANDON`.",
        "",
    ]
    for c in CARDS:
        out += [
            f"## {c.name_zh} — {c.name_en}",
            "",
            "| | |",
            "|---|---|",
            f"| Definition | {c.definition} |",
            f"| Formula | {c.formula} |",
            f"| Data source | {c.source} |",
            f"| Period | {c.period} |",
            f"| Target | {c.target} |",
            f"| Owner | {c.owner} |",
            "",
        ]
    return "\n".join(out)


if __name__ == "__main__":
    print(metrics_markdown(), end="")
