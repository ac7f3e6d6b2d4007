"""What a Kubeflow component does around its work, inside its container: MLflow runs for the steps (notebook 08).

Every component of :mod:`mlops_helpers.kfp_pipeline` connects to the tracking server it is given as a parameter,
logs a child run under the pipeline's parent run, and records its verdict on the parent. This module does not
import kfp: a component imports it while kfp's executor is still loading, and importing ``kfp.dsl`` again from
there fails (a circular import).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

#: The steps, in order; a step's number in the parent run's ``stage.N.<step>`` tags.
STEPS = ("ingest", "validate", "train", "evaluate", "register")


def connect(tracking_uri: str) -> None:
    """Point MLflow's tracking and registry at ``tracking_uri`` (the pipeline parameter), quietly."""
    import mlflow

    from mlops_helpers import workspace

    workspace.quiet()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)


def close_parent(parent_run_id: str, status: str, exit_code: int, promoted: bool = False) -> None:
    """End the pipeline's parent run with ``status`` and the outcome tags notebook 05's pipeline also sets."""
    import mlflow

    client = mlflow.MlflowClient()
    client.set_tag(parent_run_id, "pipeline.exit_code", str(exit_code))
    client.set_tag(parent_run_id, "pipeline.promoted", str(promoted))
    client.set_terminated(parent_run_id, status)


@contextlib.contextmanager
def step_run(tracking_uri: str, parent_run_id: str, step: str) -> Iterator:
    """A child run named ``step`` under the parent run. If the step raises, the parent run is closed as FAILED."""
    import mlflow

    from mlops_helpers.pipeline import EXIT_CODES, StageRefused

    connect(tracking_uri)
    client = mlflow.MlflowClient()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    tag = f"stage.{STEPS.index(step) + 1}.{step}"
    try:
        with mlflow.start_run(run_name=step, experiment_id=experiment_id, parent_run_id=parent_run_id) as run:
            yield run
    except BaseException as exc:
        client.set_tag(parent_run_id, tag, "refused" if isinstance(exc, StageRefused) else "failed")
        close_parent(parent_run_id, "FAILED", EXIT_CODES.get(step, EXIT_CODES["usage"]))
        raise
    if client.get_run(parent_run_id).data.tags.get(tag) is None:
        client.set_tag(parent_run_id, tag, "passed")


def local_path(uri: str) -> Path:
    """A local path from a path or a ``file://`` URI (on a cluster, mount or download other schemes first)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme:
        raise ValueError(f"data_uri {uri!r}: only a path or a file:// URI is read here (got {parsed.scheme}://)")
    return Path(uri)
