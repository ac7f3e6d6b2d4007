"""Where the course keeps its state, and the settings that keep it offline and quiet (introduced in notebook 00).

Everything a notebook generates (the MLflow database, artifacts, reports, logs, executed notebooks) lives in one
git-ignored workspace folder, never in the source tree. Its location is, in order: the ``root`` passed to
:func:`setup`, the ``COURSE_WORKSPACE`` environment variable (set by the runner and by CI), or ``<repo>/workspace``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlops_helpers import REPO_ROOT

#: The environment variable naming the workspace folder.
ENV_VAR = "COURSE_WORKSPACE"

#: Settings that keep every tool offline and its output free of noise. Applied by :func:`quiet`.
QUIET_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",  # mlflow's usage telemetry (on by default; contacts an outside host)
    "DO_NOT_TRACK": "true",  # the cross-tool opt-out, honoured by mlflow and others
    "DVC_NO_ANALYTICS": "1",  # DVC's usage analytics (on by default: a background sender contacts an outside host)
    "WHYLOGS_NO_ANALYTICS": "1",  # whylogs' usage statistics (read when whylogs is imported: call quiet() first)
    "NML_DISABLE_USAGE_LOGGING": "1",  # NannyML's usage logging (segment.io)
    "FEAST_USAGE": "False",  # Feast's usage statistics (notebook 11's .feast-venv inherits it through processes)
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",  # tqdm bars in outputs are noise for nbval
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",  # no "View run ... at: http://127.0.0.1:<port>" lines
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "GIT_PYTHON_REFRESH": "quiet",  # mlflow probes git for the source version; say nothing when git is absent
}

#: Loggers that print INFO lines (alembic migrations, mlflow's own chatter) into notebook outputs.
QUIET_LOGGERS = ("alembic", "mlflow", "urllib3", "httpx", "matplotlib", "papermill", "traitlets")


def default_root() -> Path:
    """The workspace folder: ``$COURSE_WORKSPACE`` if set, else ``<repo>/workspace``."""
    env = os.environ.get(ENV_VAR)
    return Path(env).expanduser().resolve() if env else REPO_ROOT / "workspace"


def quiet() -> None:
    """Turn telemetry off and quieten logging, for this process and every process it starts.

    Safe to call more than once. Called by :func:`setup`, by the runner and by the background-process helper.
    """
    os.environ.update(QUIET_ENV)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # The one warning mlflow prints on every model with integer inputs: we declare float inputs instead, but a
    # learner's own experiments may not; it says nothing about their code that they can fix here.
    warnings.filterwarnings("ignore", message=".*Hint: Inferred schema contains integer column.*")
    # mlflow 3.17 registers its local-file dataset source under two schemes ("" and "file"), so every
    # `mlflow.data.from_pandas(..., source=<path>)` warns that the source "can be interpreted in multiple ways";
    # both interpretations are the same class, so the warning carries no information.
    warnings.filterwarnings("ignore", message="The specified dataset source can be interpreted in multiple ways")


@dataclass(frozen=True)
class Workspace:
    """The course's state folder and the URIs derived from it."""

    root: Path

    @property
    def tracking_db(self) -> Path:
        """The SQLite file holding MLflow runs, experiments and the model registry."""
        return self.root / "mlflow.db"

    @property
    def tracking_uri(self) -> str:
        """``sqlite:///<workspace>/mlflow.db``: tracking store and model registry in one file."""
        return f"sqlite:///{self.tracking_db}"

    @property
    def artifacts(self) -> Path:
        """Where run and model artifacts go (each experiment gets a sub-folder)."""
        return self.root / "artifacts"

    def path(self, *parts: str) -> Path:
        """A path inside the workspace; its parent folder is created."""
        target = self.root.joinpath(*parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target


def setup(root: str | Path | None = None, experiment: str | None = None) -> Workspace:
    """Create the workspace, point MLflow's tracking and registry at its SQLite database, and return it.

    With ``experiment``, that experiment is created if missing (its artifacts under ``<workspace>/artifacts``, not
    in the current directory) and made the active one. Introduced in notebook 00; every notebook starts with it.
    """
    quiet()
    ws = Workspace(Path(root).expanduser().resolve() if root else default_root())
    ws.root.mkdir(parents=True, exist_ok=True)
    ws.artifacts.mkdir(exist_ok=True)
    os.environ[ENV_VAR] = str(ws.root)
    os.environ["MLFLOW_TRACKING_URI"] = ws.tracking_uri
    os.environ["MLFLOW_REGISTRY_URI"] = ws.tracking_uri

    import mlflow  # imported here: about 1 s, and only notebooks that track need it

    mlflow.set_tracking_uri(ws.tracking_uri)
    mlflow.set_registry_uri(ws.tracking_uri)
    if experiment:
        ensure_experiment(ws, experiment)
        mlflow.set_experiment(experiment)
    return ws


def connect(tracking_uri: str | None = None, experiment: str | None = None) -> Workspace:
    """Point MLflow's tracking and registry at ``tracking_uri``: the one way the CLIs, the service and the KFP steps
    connect (notebooks call :func:`setup`).

    Without ``tracking_uri`` it uses ``MLFLOW_TRACKING_URI`` when set (a team's server, CI's throw-away one, or the
    workspace database a notebook set up, which its subprocesses inherit), else the workspace's database. With
    ``experiment``, that experiment is created if missing and made the active one. Returns the workspace, where
    reports and logs go whatever the tracking server is.
    """
    import mlflow

    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    local = Workspace(default_root())
    if not uri or uri == local.tracking_uri:
        return setup(experiment=experiment)
    quiet()
    local.root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if experiment:
        if mlflow.get_experiment_by_name(experiment) is None:
            mlflow.create_experiment(experiment)
        mlflow.set_experiment(experiment)
    return local


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Hide what MLflow prints to stderr while it works ("Successfully registered model ...", "Created version ...").

    For cells whose output must be the same however often they run (a catch-up cell, a replay that registers
    versions): the version numbers in those lines depend on what ran before. Errors still raise.
    """
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def ensure_experiment(ws: Workspace, name: str) -> str:
    """Return the id of experiment ``name``, creating it with its artifacts inside the workspace if missing."""
    import mlflow

    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = (ws.artifacts / name).as_uri()
    return mlflow.create_experiment(name, artifact_location=location)
