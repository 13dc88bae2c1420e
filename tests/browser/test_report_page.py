"""The HTML report in headless Chromium with Chinese fonts: it reads right (title, figures, the
chart, the metric cards), and is screenshotted for the docs."""

import os
import shutil
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from reports.build import ReportOptions, build_report, period_for
from reports.render import write
from tests.integration.test_reports import DAY, TZ, seed

pytestmark = [pytest.mark.browser]
DOCS = Path(__file__).resolve().parents[2] / "docs"


async def test_daily_report_reads_right(browser: Browser, tmp_path: Path) -> None:
    engine, sessions = await seed(f"sqlite+aiosqlite:///{tmp_path / 'r.sqlite3'}")
    try:
        report = await build_report(
            sessions, period_for("daily", DAY, TZ), ReportOptions(lang="zh")
        )
    finally:
        await engine.dispose()
    page_file = write(report, "html", tmp_path / "daily.html")
    page = await browser.new_page(locale="zh-CN", viewport={"width": 1200, "height": 900})
    await page.goto(page_file.as_uri())
    await expect(page.locator("#title")).to_have_text("日报 · 2026-11-20")
    await expect(page.locator('#metrics td[data-metric="service_level"]')).to_have_text("44.4%")
    await expect(page.locator('#metrics td[data-metric="asa"]')).to_have_text("19.2")
    await expect(page.locator('#calls td[data-figure="offered"]')).to_have_text("10")
    assert await page.locator("svg rect").count() == 24  # one bar per hour
    await expect(page.locator(".cards")).to_contain_text("平均等待响应时长")
    # The CJK text is laid out with a CJK font (not tofu): its rendered width is that of full-width glyphs.
    width = await page.evaluate("""() => { const s = document.createElement('span');
        s.style.fontFamily = getComputedStyle(document.body).fontFamily; s.textContent = '服务水平';
        document.body.appendChild(s); const w = s.getBoundingClientRect().width; s.remove(); return w; }""")
    size = await page.evaluate("() => parseFloat(getComputedStyle(document.body).fontSize)")
    assert width == pytest.approx(4 * size, rel=0.15)
    shot = tmp_path / "report-daily.png"
    await page.screenshot(path=str(shot), full_page=True)
    if os.environ.get("CTI_UPDATE_SCREENSHOTS"):
        DOCS.mkdir(exist_ok=True)
        shutil.copy(shot, DOCS / "report-daily.png")
