"""End to end in a real browser: JupyterLab on 127.0.0.1 with a token, 00_walkthrough opened in
headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser download), all
cells run, a widget slider moved with the keyboard, and the figure it drives must change.
A screenshot is saved (and copied to benchmarks/results/browser-walkthrough.png).
"""
from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
NOTEBOOK = "00_walkthrough.ipynb"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server rooted in a temporary copy of the notebook; yields (url, token)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)")
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed")
    work = tmp_path / "lab"
    work.mkdir()
    shutil.copy(ROOT / "notebooks" / NOTEBOOK, work / NOTEBOOK)
    port, token = _free_port(), secrets.token_hex(16)
    # Render every cell (no windowing), so all prompts and widgets are in the page.
    settings = tmp_path / "labsettings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}')
    env = {**os.environ, "OMP_NUM_THREADS": "1", "JUPYTER_CONFIG_DIR": str(tmp_path / "jcfg"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "jrun"), "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "labsettings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={token}", "--allow-root", f"--ServerApp.root_dir={work}",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
        stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.flush()
                    pytest.fail("JupyterLab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:])
                time.sleep(0.5)
        yield url, token
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _prompts(page) -> list[str]:
    return [t.strip() for t in page.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()]


def _code_cells() -> int:
    import nbformat

    nb = nbformat.read(ROOT / "notebooks" / NOTEBOOK, as_version=4)
    return sum(c.cell_type == "code" for c in nb.cells)


def _widget_image(page):
    """The PNG the decode explorer shows (inside its ipywidgets Output)."""
    return page.locator(".widget-output img, .jupyter-widgets-output-area img").first


def test_walkthrough_in_headless_chromium(lab, tmp_path):
    from playwright.sync_api import sync_playwright

    url, token = lab
    shot = tmp_path / "browser-walkthrough.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{url}/lab/tree/{NOTEBOOK}?token={token}", timeout=120_000)
            page.wait_for_selector(".jp-Notebook", timeout=120_000)
            # JupyterLab first asks which kernel to use: accept the proposed one.
            try:
                page.locator(".jp-Dialog .jp-mod-accept").click(timeout=30_000)
            except Exception:  # noqa: BLE001 - no dialog when the kernel was picked already
                pass
            page.wait_for_selector(".jp-Notebook-ExecutionIndicator, .jp-KernelStatus", timeout=60_000)
            page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
            page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
            deadline = time.monotonic() + 420
            last = f"[{_code_cells()}]:"
            while True:  # a fresh kernel numbers the cells 1..N in a Run All; the last one done = all done
                prompts = _prompts(page)
                if last in prompts and not any("*" in pr for pr in prompts):
                    break
                if "Traceback" in page.locator(".jp-Notebook").inner_text() or time.monotonic() > deadline:
                    page.screenshot(path=str(tmp_path / "failed.png"))
                    pytest.fail(f"cells did not finish cleanly: {prompts}; screenshot {tmp_path / 'failed.png'}")
                time.sleep(1)
            text = page.locator(".jp-Notebook").inner_text()
            assert "Traceback" not in text and "rapidinr: error" not in text
            assert "PSNR mean" in text and "loss" in text  # the encode and training cells printed

            image = _widget_image(page)
            image.wait_for(timeout=60_000)
            before = image.get_attribute("src")
            handle = page.locator(".widget-slider [role=slider]").first
            handle.scroll_into_view_if_needed()
            handle.focus()
            page.keyboard.press("ArrowRight")
            deadline = time.monotonic() + 60
            while _widget_image(page).get_attribute("src") in (before, None):
                assert time.monotonic() < deadline, "the figure did not change after moving the slider"
                time.sleep(0.5)
            try:  # JupyterLab's "get notified about news?" toast would cover part of the screenshot
                page.get_by_role("button", name="No").first.click(timeout=2_000)
            except Exception:  # noqa: BLE001 - no toast
                pass
            page.locator(".widget-slider").first.scroll_into_view_if_needed()
            page.screenshot(path=str(shot), full_page=False)
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, results / "browser-walkthrough.png")
