"""End to end in a real browser: JupyterLab on 127.0.0.1 with a token, notebooks opened in
headless Chromium (Debian's /usr/bin/chromium driven by Playwright; no browser download), all
cells run. 00_walkthrough: a widget slider moved with the keyboard, and the figure it drives must
change. A small notebook with the Fig. 3 explorer: bad values typed into its text box must each show
one red line and no traceback. Screenshots are saved (and copied to benchmarks/results/).
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
    _write_refusal_notebook(work / REFUSAL_NOTEBOOK)
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


# A bad value typed into a widget: the Fig. 3 explorer over two tiny images (its SIREN box is text).
REFUSAL_NOTEBOOK = "widget_refusal.ipynb"
REFUSAL_CELLS = [
    "import torch\nfrom rapidinr.study import widgets\ntorch.set_num_threads(1)\n"
    "images = torch.randint(0, 256, (2, 3, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))",
    "widgets.rd_explorer(images, steps=10, retrain_steps=5, progress=False)",
]


def _write_refusal_notebook(path: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in REFUSAL_CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _open_and_run_all(page, url: str, token: str, notebook: str, cells: int, tmp_path: Path, seconds: int = 420):
    """Open ``notebook`` in JupyterLab, accept the kernel, Run All, and wait until every cell ran."""
    page.goto(f"{url}/lab/tree/{notebook}?token={token}", timeout=120_000)
    page.wait_for_selector(".jp-Notebook", timeout=120_000)
    try:  # JupyterLab first asks which kernel to use: accept the proposed one
        page.locator(".jp-Dialog .jp-mod-accept").click(timeout=30_000)
    except Exception:  # noqa: BLE001 - no dialog when the kernel was picked already
        pass
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator, .jp-KernelStatus", timeout=60_000)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    deadline = time.monotonic() + seconds
    last = f"[{cells}]:"
    while True:  # a fresh kernel numbers the cells 1..N in a Run All; the last one done = all done
        prompts = _prompts(page)
        if last in prompts and not any("*" in pr for pr in prompts):
            return
        if "Traceback" in page.locator(".jp-Notebook").inner_text() or time.monotonic() > deadline:
            page.screenshot(path=str(tmp_path / "failed.png"))
            pytest.fail(f"cells did not finish cleanly: {prompts}; screenshot {tmp_path / 'failed.png'}")
        time.sleep(1)


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
            _open_and_run_all(page, url, token, NOTEBOOK, _code_cells(), tmp_path)
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


def test_a_bad_value_typed_into_a_widget_is_one_red_line(lab, tmp_path):
    """Typed into the explorer's SIREN box in a live kernel: not an architecture, then one over the
    budget. Each must show the one red line under the controls, and never a traceback (in a kernel,
    ipywidgets' Output prints and swallows any exception that leaves it)."""
    from playwright.sync_api import sync_playwright

    url, token = lab
    shot = tmp_path / "browser-widget-refusal.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            _open_and_run_all(page, url, token, REFUSAL_NOTEBOOK, len(REFUSAL_CELLS), tmp_path)
            box = page.locator(".widget-text input").first
            box.wait_for(timeout=120_000)
            for typed, expect in (("3xfoo", "rapidinr: SIREN: expected LAYERSxHIDDEN such as 3x15, got '3xfoo'"),
                                  ("8x64", "over the budget of 4096 bytes")):
                box.fill(typed)
                box.press("Enter")
                deadline = time.monotonic() + 120
                while expect not in page.locator(".jp-Notebook").inner_text():
                    assert time.monotonic() < deadline, f"no refusal line after typing {typed}"
                    time.sleep(0.5)
                text = page.locator(".jp-Notebook").inner_text()
                assert "Traceback" not in text and "UserError" not in text and "--arch" not in text
                red = page.locator(".widget-html span[style*='color:#b00']")
                assert red.count() == 1 and expect in red.first.inner_text()
            page.screenshot(path=str(shot), full_page=False)
        finally:
            browser.close()
    results = ROOT / "benchmarks" / "results"
    results.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, results / "browser-widget-refusal.png")
