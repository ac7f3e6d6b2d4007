"""The lab's proxy for a shared JupyterHub (issue 16): servers reached through the Jupyter server, no port opened.

The lab is started as `make lab` starts it (scripts/lab.py, a free port on 127.0.0.1, stopped by PID with what it
started). A server a notebook would start (here ``python -m http.server``) answers at ``<lab>/proxy/<port>/``, and the
named launcher ``<lab>/mlflow/`` starts the MLflow UI on the workspace's database, page and assets. No browser.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psutil
import pytest

from mlops_helpers import processes

REPO = Path(__file__).resolve().parents[1]
PROXY = Path(sys.prefix) / "proxy"
HUB = "https://hub.example.org"  # a hub's address, as the browser's Origin


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # a 302 to the login page is an answer, not a page to follow
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def _get(url: str, token: str, timeout: float = 30, data: bytes | None = None, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, data=data, headers={"Authorization": f"token {token}", **headers})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8", "replace")


@pytest.fixture(scope="module")
def proxied_lab(tmp_path_factory):
    """``(base_url, token, workspace)`` of a lab started by scripts/lab.py with jupyter-server-proxy installed."""
    if not (PROXY / ".installed").exists():  # `make unit` installs it first; a bare pytest run makes it here
        subprocess.run(["make", "--no-print-directory", "proxy-deps", f"VENV={sys.prefix}"], cwd=REPO, check=True)
    root = tmp_path_factory.mktemp("proxied-lab")
    workspace, lab_dir = root / "workspace", root / "lab"
    workspace.mkdir()
    token = secrets.token_hex(16)
    port = processes.free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "COURSE_WORKSPACE")}
    env["JUPYTER_TOKEN"] = token
    env["MLFLOW_SERVER_CORS_ALLOWED_ORIGINS"] = HUB  # what a hub sets; the proxy passes it on to the MLflow UI
    command = [sys.executable, str(REPO / "scripts" / "lab.py"), "start", "--lab", str(lab_dir),
               "--workspace", str(workspace), "--port", str(port), "--no-browser"]  # fmt: skip
    log_path = root / "lab.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if _get(f"{base}/api/status", token, timeout=2)[0] == 200:
                break
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            server.kill()
            pytest.fail(f"the lab did not start:\n{log_path.read_text()[-3000:]}")
        time.sleep(0.5)
    try:
        yield base, token, workspace, log_path
    finally:
        family = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)  # the proxy stops the MLflow UI it started
        _, alive = psutil.wait_procs(family, timeout=30)
        for proc in alive:  # by PID: the MLflow UI's workers run in a process group of their own
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(alive, timeout=10)


def test_the_lab_loads_jupyter_server_proxy_with_the_mlflow_launcher(proxied_lab):
    base, token, _, log_path = proxied_lab
    status, body = _get(f"{base}/server-proxy/servers-info", token)  # the extension's own API: 404 if not loaded
    assert status == 200, log_path.read_text()[-3000:]
    assert [server["name"] for server in json.loads(body)["server_processes"]] == ["mlflow"]
    assert _get(f"{base}/server-proxy/servers-info", "wrong-token")[0] in (302, 403)  # behind the lab's login
    status, page = _get(f"{base}/lab", token)  # its JupyterLab extension (the launcher tile) is served to the browser
    assert status == 200 and "@jupyterhub/jupyter-server-proxy" in page


def test_a_server_a_notebook_starts_is_reached_at_proxy_port(proxied_lab, tmp_path):
    base, token, _, _ = proxied_lab
    (tmp_path / "metrics.txt").write_text("citybikes_requests_total 3\n")
    command = [sys.executable, "-m", "http.server", "{port}", "--bind", "{host}", "--directory", str(tmp_path)]
    with processes.start(command, name="proxied-http", log_dir=tmp_path / "logs") as server:
        status, body = _get(f"{base}/proxy/{server.port}/metrics.txt", token)
        assert (status, body) == (200, "citybikes_requests_total 3\n")
        assert _get(f"{base}/proxy/{server.port}/metrics.txt", "wrong-token")[0] in (302, 403)


def test_the_mlflow_ui_loads_under_lab_mlflow(proxied_lab):
    base, token, workspace, _ = proxied_lab
    status, page = _get(f"{base}/mlflow/", token, timeout=150)  # the first visit starts the UI (database set up)
    assert status == 200 and "<title>MLflow</title>" in page, page[:2000]
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', page)
    assert assets, page[:2000]
    # The assets are named under the lab's /mlflow/ path (--static-prefix), so the browser fetches them through it.
    assert all(a.startswith(("/mlflow/", "./", "static-files")) for a in assets), assets
    asset = assets[0] if assets[0].startswith("/") else f"/mlflow/{assets[0].removeprefix('./')}"
    status, body = _get(f"{base}{asset}", token)
    assert status == 200 and len(body) > 1000, (asset, status)
    assert (workspace / "mlflow.db").exists()  # the UI runs on the workspace's database
    # On a hub the UI's POSTs (listing runs) come from the hub's origin: allowed by the variable the hub sets (the
    # fixture sets it as a hub would), while MLflow's cross-origin guard still refuses any other site.
    query = json.dumps({"max_results": 10}).encode()
    search = f"{base}/mlflow/ajax-api/2.0/mlflow/experiments/search"
    for origin, expected in ((HUB, 200), ("https://elsewhere.example.org", 403)):
        status, body = _get(search, token, data=query, **{"Content-Type": "application/json", "Origin": origin})
        assert status == expected, (origin, status, body[:500])
    assert (
        json.loads(_get(search, token, data=query, **{"Content-Type": "application/json", "Origin": HUB})[1])[
            "experiments"
        ][0]["name"]
        == "Default"
    )


@pytest.mark.parametrize(
    ("kind", "page", "asset_pattern"),
    [("prometheus", "classic/graph", r'(?:src|href)="(/[^"]+\.(?:js|css)[^"]*)"'), ("alertmanager", "", None)],
)
def test_prometheus_and_alertmanager_pages_load_through_the_proxy(proxied_lab, tmp_path, monkeypatch, kind, page,
                                                                  asset_pattern):  # fmt: skip
    """Started as notebook 07 starts them plus ``processes.web_url_flags()``, their pages and every asset a page names
    load at ``<lab>/proxy/<port>/``. Without the flags Prometheus' assets point at the lab's own /classic/static/."""
    from mlops_helpers import alerting

    base, token, _, _ = proxied_lab
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    monkeypatch.delenv(processes.LAB_PROXY_ENV, raising=False)
    assert processes.web_url_flags() == [] and processes.page_url("http://127.0.0.1:9090", "graph").endswith("90/graph")
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", "/user/alice/")
    assert processes.lab_proxy() == "/user/alice/proxy/"
    monkeypatch.setenv(processes.LAB_PROXY_ENV, "/proxy/")  # what `make lab` gives its kernels
    if kind == "prometheus":
        (tmp_path / "p.yml").write_text("global:\n  scrape_interval: 15s\n")
        command = [alerting.PROMETHEUS, "--config.file=p.yml", "--web.listen-address=127.0.0.1:{port}",
                   "--storage.tsdb.path=tsdb"]  # fmt: skip
        api = "api/v1/status/buildinfo"
    else:
        (tmp_path / "a.yml").write_text("route:\n  receiver: r\nreceivers:\n- name: r\n")
        command = [alerting.ALERTMANAGER, "--config.file=a.yml", "--web.listen-address=127.0.0.1:{port}",
                   "--cluster.listen-address=", "--storage.path=am"]  # fmt: skip
        api = "api/v2/status"
    with processes.start(command + processes.web_url_flags(), name=kind, health_path="/-/ready", cwd=tmp_path,
                         log_dir=tmp_path / "logs") as server:  # fmt: skip
        where = processes.page_url(server.url, page)
        assert where == f"/proxy/{server.port}/{page}"
        status, body = _get(f"{base}{where}", token)
        assert status == 200, (status, body[:500])
        assert _get(f"{base}/proxy/{server.port}/{api}", token)[0] == 200  # the API, as before
        if asset_pattern is None:  # Debian's Alertmanager has no UI: its page links its endpoints, relatively
            links = re.findall(r'href="([^"]+)"', body)
            assert "-/ready" in links and not any(link.startswith("/") for link in links), links
            assert _get(f"{base}/proxy/{server.port}/-/ready", token)[0] == 200
            return
        assets = re.findall(asset_pattern, body)
        assert len(assets) >= 3, body[:2000]
        for asset in assets:  # the browser asks the lab for these paths: each must come back from Prometheus
            assert asset.startswith(f"/proxy/{server.port}/"), asset
            status, text = _get(f"{base}{asset}", token)
            assert status == 200 and len(text) > 100, (asset, status)


def test_the_proxy_config_is_passed_only_when_the_proxy_is_installed(tmp_path):
    spec = importlib.util.spec_from_file_location("course_lab_for_proxy", REPO / "scripts" / "lab.py")
    lab = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lab)
    root, workspace = tmp_path / "lab", tmp_path / "ws"
    lab.prepare(root, workspace=workspace, source=tmp_path)
    config = json.loads((root / ".settings" / "jupyter_server_config.json").read_text())
    mlflow = config["ServerProxy"]["servers"]["mlflow"]
    assert f"sqlite:///{workspace.resolve() / 'mlflow.db'}" in mlflow["command"]  # the workspace's runs
    assert mlflow["command"][-2:] == ["--static-prefix", "{base_url}mlflow"] and mlflow["absolute_url"] is True
    assert config["ServerApp"]["jpserver_extensions"] == {"jupyter_server_proxy": True}
    passed = f"--ServerApp.config_file={root / '.settings' / 'jupyter_server_config.json'}"
    assert passed not in lab.lab_command(root, proxy=tmp_path / "not-installed")
    (tmp_path / "proxy").mkdir()
    assert passed in lab.lab_command(root, proxy=tmp_path / "proxy")
    env = lab.lab_env(workspace, proxy=tmp_path / "proxy")
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(tmp_path / "proxy")
    assert env[processes.LAB_PROXY_ENV] == "/proxy/"  # the kernels' processes.lab_proxy()
    assert processes.LAB_PROXY_ENV not in lab.lab_env(workspace, proxy=tmp_path / "not-installed")
