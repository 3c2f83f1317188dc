"""report.html in a real headless browser (Debian's chromium through playwright, no browser
download): every figure decodes, offline; the first screen is saved as a test artifact.

Needs /usr/bin/chromium and the playwright package (see .ci/run). Without them the test skips
with the reason, except under CI=true, where a missing browser is a failure.
"""
import importlib.util
import os
import shutil
from pathlib import Path

import pytest
from conftest import write_run, write_study

from optsweep.analysis import load_runs
from optsweep.analysis.optuna_study import find_studies
from optsweep.analysis.report import write_report

CHROMIUM = os.environ.get("OPTSWEEP_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "analysis" / "test-artifacts"


def browser_or_skip():
    missing = [what for what, ok in (
        (f"chromium at {CHROMIUM} (apt-get install -y chromium)", Path(CHROMIUM).is_file()),
        ("the playwright package (pip install playwright)",
         importlib.util.find_spec("playwright") is not None)) if not ok]
    if missing:
        reason = "report browser test needs " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def report(lr_sweep, optimizer_sweep, tmp_path):
    for num, lr in enumerate((1e-3, 1e-2)):  # a sweep with a run that stopped early
        write_run(lr_sweep.parent / "adam_wd" / str(num), lr=lr, wd=1e-4 * num, num=num)
    write_run(lr_sweep / "9", lr=1e-1, status="pruned", epochs=2, num=9)
    studies, _ = find_studies([write_study(lr_sweep)])  # the sweep's Optuna study: 4 figures
    return write_report(load_runs([lr_sweep.parent]), tmp_path / "report", select="val_acc1",
                        studies=studies)


@pytest.mark.browser
def test_every_figure_of_the_report_decodes_in_a_headless_browser(report, tmp_path):
    browser_or_skip()
    from playwright.sync_api import sync_playwright

    requests = []
    with sync_playwright() as driver:
        context = driver.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, headless=True, args=FLAGS,
            viewport={"width": 1280, "height": 900}, offline=True)
        try:
            page = context.new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate(
                "Promise.all(Array.from(document.images).map(i => i.decode().then("
                "() => [i.alt, i.naturalWidth], () => [i.alt, 0])))")
            shot = tmp_path / "report-first-screen.png"
            page.screenshot(path=str(shot))
        finally:
            context.close()
    assert [alt for alt, _ in images][0] == "overview"
    # the overview, then curves and final values of 3 sweeps, and the study's four figures
    assert len(images) == 1 + 2 * 3 + 4
    assert all(width > 0 for _, width in images), images
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / shot.name)
    print(f"first screen of report.html: {ARTIFACTS / shot.name}")
