"""What a Kubeflow component does around its work, inside its container: MLflow runs for the steps (notebook 08).

Every component of :mod:`mlops_helpers.kfp_pipeline` connects to the tracking server it is given as a parameter,
logs a child run under the pipeline's parent run, and records its verdict on the parent with the same
``stage.N.<name>`` tag and exit code notebook 05's command line uses. The steps that change the registry put it back
as it was when they fail (:func:`restoring`), as the command line does. This module does not import kfp: a component
imports it while kfp's executor is still loading, and importing ``kfp.dsl`` again from there fails (a circular import).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_helpers.pipeline import EXIT_CODES, STAGE_NAMES, StageRefused, stage_tag

if TYPE_CHECKING:  # pragma: no cover
    from mlops_helpers.registry import Registry

#: The steps, in order: the stages of notebook 05's pipeline, one component each. A step's position gives its
#: ``stage.N.<step>`` tag on the parent run, the same tag the command line sets on its run.
STEPS = STAGE_NAMES


def step_tag(step: str) -> str:
    """The parent run's tag for ``step``'s verdict: ``stage.<position in STEPS>.<step>``."""
    return stage_tag(step, STEPS)


def open_parent_run(tracking_uri: str, experiment: str, tags: dict[str, str]) -> str:
    """Create the pipeline run's parent run in ``experiment`` (created if missing) and return its id.

    The first step does this, not the caller: on a cluster the caller is ``kfp.Client``, which knows nothing of MLflow.
    """
    import mlflow

    from mlops_helpers.workspace import connect

    connect(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else mlflow.create_experiment(experiment)
    parent = mlflow.MlflowClient().create_run(
        experiment_id, run_name="kfp-pipeline", tags={"pipeline.engine": "kubeflow-pipelines", **tags}
    )
    return parent.info.run_id


def close_parent(parent_run_id: str, status: str, exit_code: int, promoted: bool = False) -> None:
    """End the pipeline's parent run with ``status`` and the outcome tags notebook 05's pipeline also sets."""
    import mlflow

    from mlops_helpers.names import EXIT_CODE_TAG, PROMOTED_TAG

    client = mlflow.MlflowClient()
    client.set_tag(parent_run_id, EXIT_CODE_TAG, str(exit_code))
    client.set_tag(parent_run_id, PROMOTED_TAG, str(promoted))
    client.set_terminated(parent_run_id, status)


@contextlib.contextmanager
def step_run(tracking_uri: str, parent_run_id: str, step: str) -> Iterator:
    """A child run named ``step`` under the parent run. If the step raises, the parent run is closed as FAILED with
    the step's exit code (a :class:`~mlops_helpers.pipeline.StageRefused` is tagged ``refused``, anything else
    ``failed``)."""
    import mlflow

    from mlops_helpers.workspace import connect

    connect(tracking_uri)
    client = mlflow.MlflowClient()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    tag = step_tag(step)
    try:
        with mlflow.start_run(run_name=step, experiment_id=experiment_id, parent_run_id=parent_run_id) as run:
            yield run
    except BaseException as exc:
        client.set_tag(parent_run_id, tag, "refused" if isinstance(exc, StageRefused) else "failed")
        close_parent(parent_run_id, "FAILED", EXIT_CODES.get(step, EXIT_CODES["usage"]))
        raise
    if client.get_run(parent_run_id).data.tags.get(tag) is None:
        client.set_tag(parent_run_id, tag, "passed")


@contextlib.contextmanager
def restoring(registry: Registry, before: dict[str, Any]) -> Iterator[None]:
    """Put the registry back to ``before`` (from ``Registry.state()``) if the block raises, then re-raise: a refusal
    at the integration test or at promotion removes the version registered earlier, as the command line does."""
    try:
        yield
    except BaseException as exc:
        why = f"restored: refused at {exc.stage}" if isinstance(exc, StageRefused) else "restored: the release failed"
        registry.restore(before, why)
        raise


def local_path(uri: str) -> Path:
    """A local path from a path or a ``file://`` URI (on a cluster, mount or download other schemes first)."""
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    if parsed.scheme:
        raise ValueError(f"data_uri {uri!r}: only a path or a file:// URI is read here (got {parsed.scheme}://)")
    return Path(uri)
