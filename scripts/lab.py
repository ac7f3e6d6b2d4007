"""The learner's lab: a git-ignored working copy of the notebooks, opened in JupyterLab with the workspace beside it.

    make lab          # python scripts/lab.py start: make the copy if missing, then JupyterLab on 127.0.0.1
    make lab-reset    # python scripts/lab.py reset [NB...]: the copy (or some notebooks) fresh, the old one backed up

Layout (everything under ``lab/`` is git-ignored)::

    lab/                  the lab's root folder: what the file browser shows
      notebooks/          the learner's copy of notebooks/*.ipynb: edits and autosave land here, never in the repo
      workspace -> ../workspace   the course workspace (reports, logs, MLflow database), so every file opens
      backups/            copies put aside by `make lab-reset`
      .settings/          JupyterLab settings overrides written at each start (no news prompt, no update check),
                          and the server's config for jupyter-server-proxy (below)

The copy is made on first use and never overwritten: a notebook added to the course later (after a ``git pull``)
is copied in when missing; an instructor's fix to a notebook the learner already has reaches them by
``make lab-reset NB=06`` (their own version goes to ``lab/backups/``). The kernel keeps ``COURSE_WORKSPACE`` pointing
at ``<repo>/workspace`` (or the ``--workspace`` given), as before.

Servers through the lab (a shared JupyterHub, where a learner can open no port of their own): when ``make proxy-deps``
has put jupyter-server-proxy into ``<venv>/proxy`` (``make lab`` does), that folder goes on the server's PYTHONPATH and
the extension is enabled in ``.settings/jupyter_server_config.json`` (its own enabling file lands in
``<venv>/proxy/etc``, which is not on Jupyter's config path). Then ``<lab>/mlflow/`` starts the MLflow UI on the
workspace's database on first visit (a launcher tile too), and any server a notebook starts on 127.0.0.1 (Prometheus,
Alertmanager, the prediction service's ``/docs``) is at ``<lab>/proxy/<port>/``, behind the lab's login.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SOURCE = REPO_ROOT / "notebooks"
LAB = REPO_ROOT / "lab"
PATTERN = "[0-9][0-9]_*.ipynb"

#: JupyterLab settings the lab starts with. ``--LabApp.news_url=None`` stops the news *fetch* but not the
#: "get notified about official Jupyter news?" prompt: that prompt is shown while the notification plugin's
#: ``fetchNews`` setting is "none" (ask). "false" (never) stops both; ``checkForUpdates`` off too.
OVERRIDES = {"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": False}}

#: Where `make proxy-deps` installs jupyter-server-proxy (the course venv's ``proxy`` folder).
PROXY = Path(sys.prefix) / "proxy"


def proxy_config(workspace: Path, python: str = sys.executable) -> dict:
    """The Jupyter server's config for jupyter-server-proxy: the extension enabled, the MLflow UI as a named server.

    ``{port}`` and ``{base_url}`` are filled by the proxy. The UI is served under its full path
    (``absolute_url``, ``--static-prefix``) so that its pages and assets load behind ``<base_url>mlflow/`` on a hub
    as on a laptop.
    """
    mlflow = str(Path(python).parent / "mlflow")
    database = f"sqlite:///{workspace / 'mlflow.db'}"
    command = [mlflow, "ui", "--workers", "1", "--host", "127.0.0.1", "--port", "{port}",
               "--backend-store-uri", database, "--artifacts-destination", str(workspace / "artifacts"),
               "--static-prefix", "{base_url}mlflow"]  # fmt: skip
    return {
        "ServerApp": {"jpserver_extensions": {"jupyter_server_proxy": True}},
        "ServerProxy": {
            "servers": {
                "mlflow": {
                    "command": command,
                    "environment": {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"},
                    "absolute_url": True,
                    # On a hub the browser's Host is the hub's name, which MLflow's DNS-rebinding guard refuses; the
                    # Jupyter server has checked it already. The Origin is passed on: MLflow refuses a POST from any
                    # origin but loopback unless the hub sets MLFLOW_SERVER_CORS_ALLOWED_ORIGINS=https://<hub>.
                    "request_headers_override": {"Host": "127.0.0.1:{port}"},
                    "timeout": 120,
                    "launcher_entry": {"title": "MLflow UI"},
                }
            }
        },
    }


def course_notebooks(source: Path = SOURCE) -> list[Path]:
    return sorted(source.glob(PATTERN))


def prepare(lab: Path = LAB, workspace: Path | None = None, source: Path = SOURCE) -> list[str]:
    """Make the lab folder: copy the notebooks that are missing from the learner's copy (never overwrite one), link
    the workspace, write the settings overrides. Returns the names of the notebooks copied now."""
    workspace = Path(workspace or REPO_ROOT / "workspace").resolve()
    copy = lab / "notebooks"
    copy.mkdir(parents=True, exist_ok=True)
    copied = []
    for notebook in course_notebooks(source):
        target = copy / notebook.name
        if not target.exists():
            shutil.copy2(notebook, target)
            copied.append(notebook.name)
    workspace.mkdir(parents=True, exist_ok=True)
    link = lab / "workspace"
    if link.is_symlink() and link.resolve() != workspace:
        link.unlink()
    if not link.exists() and not link.is_symlink():
        link.symlink_to(os.path.relpath(workspace, lab), target_is_directory=True)
    settings = lab / ".settings"
    settings.mkdir(exist_ok=True)
    (settings / "overrides.json").write_text(json.dumps(OVERRIDES, indent=2) + "\n")
    (settings / "jupyter_server_config.json").write_text(json.dumps(proxy_config(workspace), indent=2) + "\n")
    return copied


def reset(names: list[str] | None = None, lab: Path = LAB, source: Path = SOURCE) -> Path | None:
    """Put the learner's copy (or the notebooks named by number or file name) aside under ``lab/backups/<time>/``
    and copy them fresh from the course. Returns the backup folder (None when there was nothing to back up)."""
    copy = lab / "notebooks"
    wanted = course_notebooks(source)
    if names:
        wanted = [nb for nb in wanted if nb.name in names or nb.name[:2] in names or nb.stem in names]
        if not wanted:
            raise SystemExit(f"no course notebook matches {names}")
    backup = lab / "backups" / dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    moved = False
    for notebook in wanted:
        mine = copy / notebook.name
        if mine.exists():
            backup.mkdir(parents=True, exist_ok=True)
            shutil.move(mine, backup / notebook.name)
            moved = True
    copy.mkdir(parents=True, exist_ok=True)
    for notebook in wanted:
        shutil.copy2(notebook, copy / notebook.name)
    return backup if moved else None


def lab_command(
    lab: Path = LAB,
    port: int | None = None,
    python: str = sys.executable,
    open_browser: bool = True,
    proxy: Path = PROXY,
) -> list[str]:
    """The ``jupyter lab`` command: loopback only, the lab folder as root, the course kernel, nothing fetched.

    The lab's ``workspace`` link points outside the lab folder: the contents API (the file browser, the notebook and
    HTML viewers) follows it; the ``/files/`` route (download, "open in a new browser tab") refuses it, 403.
    """
    command = [
        python, "-m", "jupyterlab",
        "--ip=127.0.0.1", f"--ServerApp.root_dir={lab}",
        f"--LabApp.app_settings_dir={lab / '.settings'}",
        "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly", "--MappingKernelManager.default_kernel_name=mlops-course",
        "--LabApp.default_url=/lab/tree/notebooks",
    ]  # fmt: skip
    if proxy.is_dir():  # jupyter-server-proxy installed (`make proxy-deps`): its config, written by prepare()
        command.append(f"--ServerApp.config_file={lab / '.settings' / 'jupyter_server_config.json'}")
    if port:
        command.append(f"--port={port}")
    if not open_browser:
        command.append("--no-browser")
    if os.getuid() == 0:
        command.append("--allow-root")
    return command


def lab_env(workspace: Path | None = None, proxy: Path = PROXY) -> dict[str, str]:
    env = dict(os.environ)
    if proxy.is_dir():  # the server imports jupyter-server-proxy from there (the kernels can too: harmless)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(proxy), env.get("PYTHONPATH")) if p)
        shared = str(proxy / "share" / "jupyter")  # its JupyterLab extension: the launcher's "MLflow UI" tile
        env["JUPYTER_PATH"] = os.pathsep.join(p for p in (shared, env.get("JUPYTER_PATH")) if p)
        env["COURSE_LAB_PROXY"] = "/proxy/"  # the kernels' processes.lab_proxy(): Prometheus' pages through the lab
    env["COURSE_WORKSPACE"] = str(Path(workspace or REPO_ROOT / "workspace").resolve())
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
    return env


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    start = sub.add_parser("start", help="make the copy if missing, then start JupyterLab")
    start.add_argument("--workspace", type=Path, default=None)
    start.add_argument("--lab", type=Path, default=LAB, help="the lab folder (default: lab/; the browser test's own)")
    start.add_argument("--port", type=int, default=None)
    start.add_argument("--no-browser", action="store_true")
    again = sub.add_parser("reset", help="the learner's copy fresh from the course (old one to lab/backups/)")
    again.add_argument("names", nargs="*", help="notebook numbers or names (default: all)")
    args = parser.parse_args(argv)
    if args.action == "reset":
        backup = reset(args.names)
        where = backup.relative_to(REPO_ROOT) if backup else "nothing to back up"
        print(f"lab/notebooks: fresh copy of {' '.join(args.names) or 'every notebook'} (previous: {where})")
        return 0
    lab = args.lab.resolve()
    copied = prepare(lab, workspace=args.workspace)
    if copied:
        print(
            f"{lab.name}/notebooks: copied {len(copied)} notebook(s) from notebooks/ (your copy; the repo is untouched)"
        )
    command = lab_command(lab, port=args.port, open_browser=not args.no_browser)
    os.execvpe(command[0], command, lab_env(args.workspace))
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
