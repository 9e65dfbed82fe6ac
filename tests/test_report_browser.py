"""report.html opened in headless Chromium (Debian's package): no script errors, the table sorts,
the charts and frames are there, and the page renders to a non-blank screenshot.

Skips without chromium, except in CI (VDBENCH_REQUIRE_BROWSER=1, set by .ci/run after
scripts/install-chromium.sh), where a missing browser is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from helpers import toy_manifest

WINDOW = (1280, 1800)


def chromium_or_skip() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = "chromium is not installed (scripts/install-chromium.sh installs Debian's package)"
        if os.environ.get("VDBENCH_REQUIRE_BROWSER") == "1":
            pytest.fail(f"VDBENCH_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return path


def chromium(browser: str, profile: Path, *args: str) -> str:
    """Run headless Chromium once; returns stdout (the DOM for --dump-dom)."""
    command = [
        browser,
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"chromium failed ({done.returncode}): {done.stderr[-2000:]}"
    return done.stdout


def dump_dom(browser: str, profile: Path, page: Path, fragment: str = "") -> str:
    return chromium(browser, profile, "--dump-dom", page.as_uri() + fragment)


def screenshot(browser: str, profile: Path, page: Path, out: Path) -> Path:
    chromium(browser, profile, f"--screenshot={out}", page.as_uri())
    assert out.is_file(), f"chromium wrote no screenshot at {out}"
    return out


def ink(png: Path) -> float:
    """Fraction of pixels that differ clearly from the page's most common colour (0: blank)."""
    from PIL import Image

    with Image.open(png) as image:
        assert image.size == WINDOW
        pixels = np.asarray(image.convert("RGB")).reshape(-1, 3).astype(int)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    background = colours[counts.argmax()]
    return float((np.abs(pixels - background).sum(axis=1) > 30).mean())


def root_tag(dom: str) -> str:
    match = re.search(r"<html[^>]*>", dom)
    assert match, "no <html> element in the dumped DOM"
    return match.group(0)


def script_errors(dom: str) -> str:
    match = re.search(r'<pre id="script-errors"[^>]*>(.*?)</pre>', dom, re.S)
    assert match, "the page lost its #script-errors box"
    return match.group(1).strip()


def polyline(html: str, cls: str) -> list[tuple[float, float]]:
    """The points of the first ``<polyline class=cls>``, each checked to lie inside the chart."""
    match = re.search(rf'<polyline class="{cls}"[^>]*points="([^"]*)"', html)
    assert match, f"no polyline {cls!r}"
    points = [(float(x), float(y)) for x, y in (p.split(",") for p in match.group(1).split())]
    assert all(0 <= x <= 420 and 0 <= y <= 160 for x, y in points), points
    return points


def model_order(dom: str) -> list[str]:
    body = dom.split('<table id="models"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<tr data-model="([^"]+)"', body)


def test_report_html_in_headless_chromium(pytester: pytest.Pytester, write_suite: Callable[..., Path], tmp_path: Path) -> None:
    browser = chromium_or_skip()
    alpha = toy_manifest("alpha", load={"concurrency": [1, 2, 4], "requests": 8, "duration": "20s"})
    suite = write_suite(alpha, toy_manifest("beta", fault="slow"))
    result = pytester.runpytest_subprocess(
        "--vdbench",
        f"--vdbench-suite={suite}",
        "--vdbench-runtime=process",
        "-p",
        "no:cacheprovider",
        "--benchmark-disable",
        "--vdbench-report=rep",
        "--vdbench-precision=0.5",
    )
    result.assert_outcomes(passed=12, failed=1, skipped=2)  # alpha's test_throughput too
    page = pytester.path / "rep" / "report.html"
    profile = tmp_path / "profile"

    dom = dump_dom(browser, profile, page)
    assert 'data-report-ready="yes"' in root_tag(dom), "the report's script did not run to its end"
    assert "data-script-errors" not in root_tag(dom) and script_errors(dom) == ""
    assert '<table id="models" class="sortable">' in dom and model_order(dom) == ["alpha", "beta"]
    # 3 bar charts, 1 throughput curve (alpha), 2 resource timelines
    assert len(re.findall(r"<svg [^>]*>", dom)) == 3 + 1 + 2 and len(re.findall(r'<rect class="bar', dom)) == 3 * 2
    throughput = dom.split('class="chart throughput"', 1)[1].split("</figure>", 1)[0]
    for line in ("p50", "p99"):
        assert len(polyline(throughput, f"line-{line}")) == 3  # one point per concurrency level
    assert throughput.count("<tr><td") == 3  # the levels' table: 1, 2, 4 clients
    timelines = dom.split('class="chart timeline"')[1:]
    assert [re.findall(r'data-model="([^"]+)"', t)[0] for t in timelines] == ["alpha", "beta"]
    for timeline in timelines:
        assert len(polyline(timeline, "memory")) >= 2 and timeline.count('<line class="mark"') >= 4
    assert len(re.findall(r'<img src="data:image/png;base64,', dom)) == 2 * 6
    assert "exceeds expect.budgets.generate_seconds" in dom  # the failure with its message

    # the sorting script really sorts: beta's 0.5 s generation first when sorted descending
    descending = dump_dom(browser, profile, page, "#sort=generate,desc")
    assert model_order(descending) == ["beta", "alpha"] and 'aria-sort="descending"' in descending
    assert model_order(dump_dom(browser, profile, page, "#sort=generate,asc")) == ["alpha", "beta"]

    shot = screenshot(browser, profile, page, tmp_path / "report.png")
    assert ink(shot) > 0.02, "the report rendered as a blank page"


def test_the_browser_checks_can_fail(tmp_path: Path) -> None:
    """The same checks catch a script error and a blank page (so their passing above means something)."""
    browser = chromium_or_skip()
    profile = tmp_path / "profile"
    report = Path(__file__).parent.parent / "pytest_vdbench" / "report" / "templates" / "report.html.j2"
    head = report.read_text().split("<style>", 1)[0]  # the real error hook from the template
    broken = tmp_path / "broken.html"
    broken.write_text(head + '</head><body><pre id="script-errors" hidden></pre><script>noSuchFunction();</script></body></html>')
    dom = dump_dom(browser, profile, broken)
    assert "noSuchFunction is not defined" in script_errors(dom) and 'data-script-errors="yes"' in root_tag(dom)
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    assert ink(screenshot(browser, profile, blank, tmp_path / "blank.png")) < 0.001
