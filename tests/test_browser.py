"""The lab as a learner uses it, in a real browser (issue 16): Debian's Chromium driven by Playwright for Python.

Run by ``make browser`` (part of ``make test``), which puts Playwright on PYTHONPATH (``make browser-deps``); ``make
unit`` leaves this file out. The lab is started by ``scripts/lab.py start`` as ``make lab`` starts it (its own lab
folder and workspace under ``workspace/``, a free port on 127.0.0.1, stopped by PID). In order, the tests:

- open the lab: no "official Jupyter news" prompt (issue item 4), the learner copy and the workspace in its root;
- run every cell of the learner copy of notebook 01 from the browser: no error or stderr output, the copy saved with
  its outputs, the repository's notebooks untouched (item 5), no numbered list started by a wrapped number (item 6);
- open a saved Evidently report at the path notebook 06 prints (item 1);
- open the MLflow UI on 01's runs: the experiment's "Model training" tab lists them, as 01 says (item 2);
- and check that the browser never sent a request to a host other than loopback.

On a failure a screenshot goes to ``workspace/browser/screenshots/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import psutil
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from mlops_helpers import processes

REPO = Path(__file__).resolve().parents[1]
WORKSPACE = REPO / "workspace" / "browser"
LAB = REPO / "workspace" / "browser-lab"
SHOTS = WORKSPACE / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
NB01 = "01_experiment_tracking.ipynb"
NEWS_PROMPT = "official Jupyter news"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
TIMEOUT_MS = 180_000
expect.set_options(timeout=TIMEOUT_MS)  # a loaded machine (CI beside other jobs) is slow to render


def _shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(Exception):
        page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@contextlib.contextmanager
def screenshot_on_failure(page: Page, name: str):
    try:
        yield
    except BaseException:
        _shot(page, name)
        raise


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.ipynb"))}


@pytest.fixture(scope="module")
def lab():
    """The lab as `make lab` starts it, on a free port: ``(base_url, token)``. Stopped by PID with its kernels."""
    for folder in (WORKSPACE, LAB):
        shutil.rmtree(folder, ignore_errors=True)
    WORKSPACE.mkdir(parents=True)
    token = secrets.token_hex(16)
    port = processes.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "COURSE_WORKSPACE")}
    env["JUPYTER_TOKEN"] = token
    command = [sys.executable, str(REPO / "scripts" / "lab.py"), "start", "--lab", str(LAB),
               "--workspace", str(WORKSPACE), "--port", str(port), "--no-browser"]  # fmt: skip
    with open(WORKSPACE / "lab.log", "wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"the lab did not start; see {WORKSPACE / 'lab.log'}")
            time.sleep(0.5)
    try:
        yield base, token
    finally:
        family = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)  # the server shuts its kernels down on SIGTERM
        _, alive = psutil.wait_procs(family, timeout=30)
        for proc in alive:  # a kernel runs in a session of its own: by PID, not by group
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=10)


@pytest.fixture(scope="module")
def browser_page(lab):
    """One Chromium page for the module, and the list of every request it sent to a non-loopback host."""
    outside: list[str] = []

    def record(request) -> None:
        url = urlparse(request.url)
        if url.scheme in ("http", "https", "ws", "wss") and url.hostname not in LOOPBACK:
            outside.append(request.url)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        context.on("request", record)
        context.on("websocket", lambda ws: record(type("R", (), {"url": ws.url})))
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            yield page, outside
        finally:
            browser.close()


def test_the_lab_shows_the_learner_copy_and_the_workspace_and_no_news_prompt(lab, browser_page):
    base, token = lab
    page, _ = browser_page
    with screenshot_on_failure(page, "lab-root"):
        page.goto(f"{base}/lab/tree/notebooks?token={token}")
        listing = page.locator(".jp-DirListing-content")
        expect(listing.get_by_text(NB01)).to_be_visible()
        root = page.request.get(f"{base}/api/contents?token={token}").json()
        assert {"notebooks", "workspace"} <= {item["name"] for item in root["content"]}
        page.goto(f"{base}/lab/tree/workspace?token={token}")  # the workspace, through the lab root's link
        expect(page.locator(".jp-DirListing-content").get_by_text("lab.log", exact=True)).to_be_visible()
        # The prompt, when it comes, is a toast a few seconds after the lab loads, and stays until answered.
        page.wait_for_timeout(8_000)
        assert NEWS_PROMPT not in page.locator("body").inner_text()


def test_notebook_01_runs_in_the_browser_from_the_learner_copy(lab, browser_page):
    base, token = lab
    page, _ = browser_page
    repo_before = _digests(REPO / "notebooks")
    source = json.loads((REPO / "notebooks" / NB01).read_text())
    code_cells = sum(cell["cell_type"] == "code" for cell in source["cells"])
    with screenshot_on_failure(page, "notebook-01"):
        page.goto(f"{base}/lab/tree/notebooks/{NB01}?token={token}")
        expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name=re.compile(r"^Run All Cells")).click()
        # Every code cell gets an execution number; none is left waiting ("[*]") or unrun ("[ ]").
        page.wait_for_function(
            """n => {
                const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                    .map(p => p.textContent.trim());
                return prompts.length === n && prompts.every(t => /^\\[\\d+\\]:$/.test(t));
            }""",
            arg=code_cells,
            timeout=TIMEOUT_MS,
        )
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        assert errors.count() == 0, errors.all_text_contents()
        # Item 6: a wrapped "50." must not start a numbered list in the rendered markdown.
        starts = page.locator(".jp-MarkdownCell .jp-RenderedMarkdown ol[start]").evaluate_all(
            "lists => lists.map(l => Number(l.getAttribute('start')))"
        )
        assert all(start < 10 for start in starts), starts
        page.locator(".jp-Notebook").first.click()
        page.keyboard.press("Control+s")
        copy = LAB / "notebooks" / NB01
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            saved = json.loads(copy.read_text())
            counts = [c.get("execution_count") for c in saved["cells"] if c["cell_type"] == "code"]
            if all(counts):
                break
            time.sleep(1)
        assert all(counts), "the learner copy was not saved with its outputs"
        assert not [o for c in saved["cells"] for o in c.get("outputs", []) if o["output_type"] == "error"]
    # Item 5: running, saving and autosave wrote to the learner copy only.
    assert _digests(REPO / "notebooks") == repo_before
    assert (WORKSPACE / "mlflow.db").exists()  # the kernel used the workspace it was given


def _report_path_printed_by_06() -> str:
    """The path of the PSI report as notebook 06's committed output names it (relative to the lab's root)."""
    notebook = json.loads((REPO / "notebooks" / "06_drift_monitoring.ipynb").read_text())
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            text = "".join(output.get("data", {}).get("text/plain", []))
            found = re.search(r"'([^']*drift-july-psi\.html)'", text)
            if found:
                return found.group(1)
    raise AssertionError("notebook 06 prints no path of drift-july-psi.html")


def test_a_saved_evidently_report_opens_from_the_lab(lab, browser_page):
    base, token = lab
    page, _ = browser_page
    path = _report_path_printed_by_06()
    assert path.startswith("workspace/"), f"notebook 06 must name the report from the lab's root: {path}"
    # A small report of the same kind, saved where notebook 06 saves it (the workspace's reports/).
    script = (
        "import sys, numpy as np, pandas as pd\n"
        "from evidently import Report\nfrom evidently.presets import DataDriftPreset\n"
        "rng = np.random.default_rng(0)\n"
        "ref, cur = (pd.DataFrame({'temp': rng.normal(m, 1, 200)}) for m in (0, 1))\n"
        "Report([DataDriftPreset()]).run(cur, ref).save_html(sys.argv[1])\n"
    )
    target = WORKSPACE / path.removeprefix("workspace/")
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-c", script, str(target)], check=True, env=processes.venv_env(), timeout=300)
    with screenshot_on_failure(page, "evidently-report"):
        # The lab opens it through the contents API (the /files/ route refuses the linked folder: scripts/lab.py).
        response = page.request.get(f"{base}/api/contents/{path}?token={token}&type=file&format=text")
        assert response.status == 200 and "Drift Summary" in response.json()["content"]
        page.goto(f"{base}/lab/tree/{path}?token={token}")
        expect(page.get_by_text("outside root contents directory")).to_have_count(0)
        # Evidently draws the report with JavaScript, which the viewer runs once the learner trusts the file.
        page.get_by_role("button", name=re.compile("Trust HTML")).first.click()
        frame = page.frame_locator(".jp-HTMLViewer iframe")
        expect(frame.get_by_text("Drift", exact=False).first).to_be_visible()


def test_the_mlflow_ui_lists_01s_runs_under_model_training(browser_page):
    page, _ = browser_page
    markdown = "".join(
        "".join(c["source"])
        for c in json.loads((REPO / "notebooks" / NB01).read_text())["cells"]
        if c["cell_type"] == "markdown"
    )
    assert "Model training" in markdown and "GenAI" in markdown, "notebook 01 must say where the UI shows the runs"
    command = ["mlflow", "ui", "--workers", "1", "--host", "{host}", "--port", "{port}",
               "--backend-store-uri", f"sqlite:///{WORKSPACE / 'mlflow.db'}"]  # fmt: skip
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with processes.start(command, name="browser-mlflow-ui", health_path="/health", env=env, timeout=180,
                         log_dir=WORKSPACE / "logs") as ui, screenshot_on_failure(page, "mlflow-ui"):  # fmt: skip
        page.goto(ui.url)
        expect(page.get_by_text("GenAI", exact=True).first).to_be_visible()
        page.get_by_text("Model training", exact=True).first.click()  # the switch at the top left
        page.get_by_role("link", name="citybikes-demand").first.click()
        # One of 01's runs, by its name.
        expect(page.get_by_text("baseline-mean", exact=True).first).to_be_visible()


def test_the_browser_sent_no_request_to_an_outside_host(browser_page):
    _, outside = browser_page
    assert outside == []
