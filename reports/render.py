"""Report outputs (6.5): HTML with SVG charts (printable), CSV, XLSX and PDF (headless Chromium
prints the HTML, so Chinese text uses the same Noto CJK fonts as the page)."""

import csv
import io
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import escape
from openpyxl import Workbook

from cti.errors import CtiError
from desk.i18n import N_, NC_, Msg, translate, translations
from reports.cells import append_xlsx_row, csv_row

FORMATS = ("html", "csv", "xlsx", "pdf")
TITLES: dict[str, Msg] = {
    "daily": N_("Daily report"),
    "weekly": N_("Weekly report"),
    "monthly": N_("Monthly report"),
    "forward": N_("Forward-looking report"),
    "custom": N_("Custom report"),
}
# The metrics' short names in the report's tables (the cards in cards.yaml carry the long ones).
METRIC_NAMES: dict[str, Msg] = {
    "offered": NC_("metric", "Offered"),
    "answered": NC_("metric", "Answered"),
    "service_level": NC_("metric", "Service level"),
    "asa": NC_("metric", "ASA (s)"),
    "aht": NC_("metric", "AHT (s)"),
    "abandon_rate": NC_("metric", "Abandon rate (gross)"),
    "net_abandon_rate": NC_("metric", "Abandon rate (net)"),
    "answer_rate": NC_("metric", "Answer rate"),
    "first_line": NC_("metric", "First-line resolution"),
    "satisfaction": NC_("metric", "Satisfied (4-5)"),
    "satisfaction_mean": NC_("metric", "Mean score"),
    "survey_response_rate": NC_("metric", "Survey response rate"),
    "occupancy": NC_("metric", "Occupancy"),
}
RATES = {
    "service_level",
    "abandon_rate",
    "net_abandon_rate",
    "answer_rate",
    "first_line",
    "satisfaction",
    "survey_response_rate",
    "occupancy",
}


def fmt(key: str, value: Any) -> str:
    """A metric value as the report prints it."""
    if value is None:
        return "–"
    if key in RATES:
        return f"{value * 100:.1f}%"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def bar_chart(values: list[int], labels: list[str], width: int = 720, height: int = 180) -> str:
    """An inline SVG bar chart (escaped by construction: numbers and given labels only)."""
    if not values:
        return ""
    top = max(values) or 1
    pad = 14  # room for the tallest bar's label
    n = len(values)
    bw = width / n
    svg = 'xmlns="http://www.w3.org/2000/svg" role="img"'
    parts = [
        f'<svg {svg} width="{width}" height="{height + 30 + pad}">',
        f'<g transform="translate(0,{pad})">',
    ]
    for i, v in enumerate(values):
        h = v / top * height
        x = i * bw
        parts.append(
            f'<rect x="{x + 2:.1f}" y="{height - h:.1f}" width="{bw - 4:.1f}" '
            f'height="{h:.1f}" fill="#1f3a5f">'
            f"<title>{escape(labels[i])}: {v}</title></rect>"
        )
        if n <= 31 or i % 2 == 0:
            parts.append(
                f'<text x="{x + bw / 2:.1f}" y="{height + 14}" font-size="10" text-anchor="middle">'
                f"{escape(labels[i])}</text>"
            )
        if v:
            parts.append(
                f'<text x="{x + bw / 2:.1f}" y="{height - h - 3:.1f}" font-size="9" '
                f'text-anchor="middle">{v}</text>'
            )
    parts.append("</g></svg>")
    return "".join(parts)


@cache
def _env(lang: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("reports", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    env.filters["fmt"] = lambda v, k="": fmt(k, v)
    return env


def to_html(report: dict[str, Any]) -> str:
    """The printable page."""
    lang = report["options"]["lang"]
    if report["kind"] == "daily":
        labels = [f"{h:02d}" for h in range(24)]
    else:
        labels = [t["day"][5:] for t in report["trend"]] or [
            str(i + 1) for i in range(len(report["hours"]))
        ]
    chart = bar_chart(report["hours"], labels)
    names = {k: translate(lang, v) for k, v in METRIC_NAMES.items()}
    return (
        _env(lang)
        .get_template("report.html")
        .render(
            r=report,
            lang=lang,
            title=translate(lang, TITLES[report["kind"]]),
            names=names,
            chart=chart,
            fmt=fmt,
        )
    )


def to_csv(report: dict[str, Any]) -> str:
    """Sections as CSV blocks (UTF-8 with BOM so spreadsheet programs read Chinese)."""
    buf = io.StringIO()
    w = csv.writer(buf)
    for section, rows in _tables(report):
        w.writerow([f"# {section}"])
        for row in rows:
            w.writerow(csv_row(row))
        w.writerow([])
    return "\ufeff" + buf.getvalue()


def to_xlsx(report: dict[str, Any], path: Path) -> None:
    """One sheet per section."""
    wb = Workbook()
    wb.remove(wb.active)  # type: ignore[arg-type]
    for section, rows in _tables(report):
        ws = wb.create_sheet(section[:31])
        for row in rows:
            append_xlsx_row(ws, row)
    wb.save(path)


def to_pdf(html: str, path: Path) -> None:
    """Print the HTML with headless Chromium."""
    browser = (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )
    if browser is None:
        raise CtiError("PDF needs Chromium on this host (scripts/env.sh installs it)")
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html, encoding="utf-8")
        proc = subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-pdf-header-footer",
                f"--user-data-dir={tmp}/profile",
                f"--print-to-pdf={path}",
                page.as_uri(),
            ],
            capture_output=True,
            timeout=120,
            check=False,
        )
    if proc.returncode != 0 or not path.exists():
        raise CtiError(
            f"Chromium could not print the report: {proc.stderr.decode(errors='replace')[-400:]}"
        )


def _tables(report: dict[str, Any]) -> list[tuple[str, list[list[Any]]]]:
    lang = report["options"]["lang"]
    out: list[tuple[str, list[list[Any]]]] = []
    out.append(
        (
            "metrics",
            [["metric", "name", "value"]]
            + [
                [k, translate(lang, METRIC_NAMES[k]) if k in METRIC_NAMES else k, v]
                for k, v in report["metrics"].items()
            ],
        )
    )
    calls = report["calls"]
    out.append(("calls", [["figure", "value"]] + [[k, v] for k, v in calls.items()]))
    out.append(
        (
            "queues",
            [
                [
                    "queue",
                    "offered",
                    "answered",
                    "abandoned",
                    "overflowed",
                    "timed_out",
                    "service_level",
                    "asa",
                    "aht",
                ]
            ]
            + [
                [
                    q,
                    f["offered"],
                    f["answered"],
                    f["abandoned"],
                    f["overflowed"],
                    f["timed_out"],
                    f["service_level"],
                    f["asa"],
                    f["aht"],
                ]
                for q, f in report["by_queue"].items()
            ],
        )
    )
    out.append(
        (
            "agents",
            [
                [
                    "agent",
                    "answered",
                    "talk_s",
                    "hold_s",
                    "acw_s",
                    "aht_s",
                    "available_s",
                    "occupancy",
                    "satisfied",
                    "responses",
                ]
            ]
            + [
                [
                    a["agent"],
                    a["answered"],
                    a["talk"],
                    a.get("hold", 0.0),
                    a["acw"],
                    a["aht"],
                    a["available_seconds"],
                    a["occupancy"],
                    a["satisfaction"],
                    a["responses"],
                ]
                for a in report["agents"]
            ],
        )
    )
    out.append(("volume", [["slot", "calls"]] + [[i, v] for i, v in enumerate(report["hours"])]))
    if report["trend"]:
        out.append(
            (
                "trend",
                [["day", "offered", "answered", "service_level", "asa"]]
                + [
                    [t["day"], t["offered"], t["answered"], t["service_level"], t["asa"]]
                    for t in report["trend"]
                ],
            )
        )
    if report["unresolved"]:
        keys = list(report["unresolved"][0])
        out.append(("unresolved", [keys] + [[u[k] for k in keys] for u in report["unresolved"]]))
    if report["forward"]:
        out.append(
            (
                "staffing",
                [["weekday", "slot", "calls", "agents", "service_level", "asa"]]
                + [
                    [p["weekday"], p["slot"], p["calls"], p["agents"], p["service_level"], p["asa"]]
                    for p in report["forward"]["staffing"]
                ],
            )
        )
    out.append(
        (
            "misses",
            [["metric", "value", "target"]]
            + [[m["metric"], m["value"], m["target"]] for m in report["misses"]],
        )
    )
    cov = report["coverage"]
    out.append(("coverage", [["figure", "value"]] + [[k, v] for k, v in cov.items()]))
    out.append(
        (
            "definitions",
            [
                [
                    "key",
                    "name_zh",
                    "name_en",
                    "definition",
                    "formula",
                    "source",
                    "period",
                    "target",
                    "owner",
                ]
            ]
            + [
                [
                    c[k]
                    for k in (
                        "key",
                        "name_zh",
                        "name_en",
                        "definition",
                        "formula",
                        "source",
                        "period",
                        "target",
                        "owner",
                    )
                ]
                for c in report["cards"]
            ],
        )
    )
    return out


def write(report: dict[str, Any], fmt_name: str, path: Path) -> Path:
    """Write one output format to `path`."""
    if fmt_name not in FORMATS:
        raise CtiError(f"format must be one of {', '.join(FORMATS)}")
    if fmt_name == "html":
        path.write_text(to_html(report), encoding="utf-8")
    elif fmt_name == "csv":
        path.write_text(to_csv(report), encoding="utf-8")
    elif fmt_name == "xlsx":
        to_xlsx(report, path)
    else:
        to_pdf(to_html(report), path)
    return path
