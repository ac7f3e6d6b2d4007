"""The CI/CD pipeline as Kubeflow Pipelines v2 components, with MLflow as the metadata store (notebook 08).

Five lightweight components, one per stage of :mod:`mlops_helpers.pipeline`, whose functions they call rather than
copy: ``ingest`` -> ``validate`` -> ``train`` -> ``evaluate`` -> ``register`` (the last one only when evaluation
passed, inside a ``dsl.If``). They pass typed artifacts: the raw batch and the validated data (``Dataset``), the
fitted model (``Model``, an MLflow model folder), the evaluation (``Metrics``), and an output parameter ``passed``.

**MLflow.** ``ingest`` opens one *parent* run for the pipeline run (the first step, not the caller, creates it: on
a cluster the caller is ``kfp.Client``, which knows nothing of MLflow, and the pipeline must be complete on its
own); every step logs a *child* run under it (``mlflow.start_run(parent_run_id=...)``) and records its verdict on
the parent as a ``stage.N.<step>`` tag, so the MLflow UI shows the whole pipeline run as one tree. The step that
ends the pipeline closes the parent run: ``register`` on success, ``evaluate`` on a refusal, ``validate`` on bad
data, any step that crashes (as ``FAILED``). The tracking server comes in as the ``tracking_uri`` parameter and is
set explicitly in every step: a step never relies on an inherited ``MLFLOW_TRACKING_URI``.

**Refusals.** Bad data *fails* the ``validate`` task (red in the KFP UI; nothing downstream can run on it). A model
that is not good enough is an expected outcome, not an error: ``evaluate`` succeeds with ``passed=False`` and the
``dsl.If`` skips ``register``.

**On a cluster** every component runs in :data:`IMAGE`, built from ``docker/kfp-component.Dockerfile`` (the pinned
environment and this package). Components import what they use inside their bodies, because KFP ships a
lightweight component to the cluster as the source of its function, and never ``pip install`` kfp at run time
(``install_kfp_package=False``): the image has it, and the course runs offline.
"""

# No `from __future__ import annotations`: KFP reads the components' type annotations as real types.
import json
from pathlib import Path
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Input, Metrics, Model, Output

from mlops_helpers import __version__
from mlops_helpers.kfp_runtime import STEPS
from mlops_helpers.names import KFP_EXPERIMENT, MODEL_NAME
from mlops_helpers.pipeline import PipelineConfig

#: The image every component runs in on a cluster (built from docker/kfp-component.Dockerfile; push it to a
#: registry the cluster can pull from and change the name accordingly).
IMAGE = f"citybikes-mlops:{__version__}"
PIPELINE_NAME = "citybikes-training"
__all__ = ["IMAGE", "STEPS", "compile_pipeline", "training_pipeline"]


# --------------------------------------------------------------------------------------------------- the components
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def ingest(data_uri: str, tracking_uri: str, experiment: str, reason: str, raw: Output[Dataset]) -> NamedTuple(
    "IngestOutputs", [("parent_run_id", str)]
):
    """Copy the batch into the pipeline's artifact store and open the pipeline's parent run in MLflow."""
    import shutil
    from collections import namedtuple

    import mlflow

    from mlops_helpers import data, names, workspace
    from mlops_helpers import kfp_runtime as kp

    workspace.connect(tracking_uri)
    source = kp.local_path(data_uri)
    shutil.copyfile(source, raw.path)
    experiment_id = (mlflow.get_experiment_by_name(experiment) or mlflow.set_experiment(experiment)).experiment_id
    parent = mlflow.MlflowClient().create_run(
        experiment_id,
        run_name="kfp-pipeline",
        tags={"pipeline.engine": "kubeflow-pipelines", names.DATA_TAG: data_uri, names.REASON_TAG: reason},
    )
    parent_run_id = parent.info.run_id
    sha256 = data.sha256(raw.path)
    raw.metadata.update({"source": data_uri, "sha256": sha256})
    with kp.step_run(tracking_uri, parent_run_id, "ingest"):
        mlflow.log_params({"data_uri": data_uri, "sha256": sha256})
        mlflow.log_metric("bytes", source.stat().st_size)
    return namedtuple("IngestOutputs", ["parent_run_id"])(parent_run_id)


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(
    raw: Input[Dataset],
    window_start: str,
    window_end: str,
    tracking_uri: str,
    parent_run_id: str,
    validated: Output[Dataset],
    report: Output[Metrics],
):
    """Check the batch against the data contract; write the typed data, or fail the task (and close the run)."""
    import mlflow

    from mlops_helpers import kfp_runtime as kp
    from mlops_helpers import pipeline as stages

    with kp.step_run(tracking_uri, parent_run_id, "validate"):
        frame, result = stages.validate_data(raw.path, (window_start, window_end))
        mlflow.log_dict(result.to_dict(), "reports/validation.json")
        mlflow.log_metrics({"rows": result.rows, "violations": len(result.violations)})
        report.log_metric("rows", result.rows)
        report.log_metric("violations", len(result.violations))
        if frame is None:
            raise stages.StageRefused("validate", result.verdict(), result.to_dict())
        frame.to_parquet(validated.path)
        validated.metadata.update({"rows": len(frame), "format": "parquet"})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def train(
    validated: Input[Dataset],
    family: str,
    holdout_days: int,
    tracking_uri: str,
    parent_run_id: str,
    model: Output[Model],
    holdout: Output[Dataset],
):
    """Fit the model on the batch minus its last ``holdout_days`` days; log it to MLflow and write it as an artifact."""
    import mlflow
    import pandas as pd

    from mlops_helpers import data, models
    from mlops_helpers import kfp_runtime as kp
    from mlops_helpers import pipeline as stages

    with kp.step_run(tracking_uri, parent_run_id, "train"):
        train_part, holdout_part = stages.split_holdout(pd.read_parquet(validated.path), holdout_days)
        params = stages.PipelineConfig(data=validated.path, family=family).model_params()
        fitted = models.build_model(family, params).fit(*data.xy(train_part))
        X_hold, _ = data.xy(holdout_part)
        mlflow.log_params({"family": family, **params, "holdout_days": holdout_days})
        mlflow.log_metric("train_rmse", stages.rmse(fitted, train_part))
        info = models.log_model(fitted, X_hold)
        models.save_model(fitted, X_hold, model.path)  # the same model, as the KFP artifact
        model.metadata.update({"model_uri": info.model_uri, "family": family, "framework": "mlflow.sklearn"})
        holdout_part.to_parquet(holdout.path)
        holdout.metadata.update({"rows": len(holdout_part), "format": "parquet"})


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    holdout: Input[Dataset],
    model_name: str,
    max_rmse: float,
    min_improvement: float,
    tracking_uri: str,
    parent_run_id: str,
    metrics: Output[Metrics],
) -> bool:
    """Compare the candidate with the threshold and the registry's champion on the held-out days; True: it passed.

    A single ``bool`` output (not a NamedTuple field): kfp 2.17's local runner resolves a ``dsl.If`` condition on a
    task's single output, but not on a named one (it skips the branch with "Could not resolve CEL parameter").
    """
    from dataclasses import asdict

    import mlflow
    import pandas as pd

    from mlops_helpers import kfp_runtime as kp
    from mlops_helpers import pipeline as stages
    from mlops_helpers.names import CHAMPION
    from mlops_helpers.registry import Registry

    with kp.step_run(tracking_uri, parent_run_id, "evaluate"):
        candidate = mlflow.pyfunc.load_model(model.path)
        registry = Registry(model_name)
        champion_version = registry.get(CHAMPION)
        champion = registry.load(champion_version.version) if champion_version is not None else None
        result = stages.evaluate(candidate, champion, pd.read_parquet(holdout.path), max_rmse, min_improvement)
        mlflow.log_dict(asdict(result), "reports/evaluation.json")
        mlflow.set_tag("verdict", result.verdict())
        mlflow.log_metric("holdout_rmse", result.candidate_rmse)
        metrics.log_metric("holdout_rmse", round(result.candidate_rmse, 4))
        if result.champion_rmse is not None:
            mlflow.log_metric("champion_holdout_rmse", result.champion_rmse)
            mlflow.set_tag("champion_version", champion_version.version)
            metrics.log_metric("champion_holdout_rmse", round(result.champion_rmse, 4))
        mlflow.MlflowClient().set_tag(parent_run_id, kp.step_tag("evaluate"), "passed" if result.passed else "refused")
    if not result.passed:  # the end of this pipeline run: nothing is registered
        kp.close_parent(parent_run_id, "FINISHED", stages.EXIT_CODES["evaluate"])
    return result.passed


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def register(model: Input[Model], model_name: str, reason: str, tracking_uri: str, parent_run_id: str) -> str:
    """Register the model, mark it ``challenger``, promote it to ``champion``; on any error put the registry back."""
    import mlflow

    from mlops_helpers import kfp_runtime as kp
    from mlops_helpers import pipeline as stages
    from mlops_helpers.names import PIPELINE_RUN_TAG
    from mlops_helpers.registry import Registry

    with kp.step_run(tracking_uri, parent_run_id, "register"):
        registry = Registry(model_name)
        before = registry.state()
        try:
            version = registry.register(model.metadata["model_uri"], reason, tags={PIPELINE_RUN_TAG: parent_run_id})
            moved = registry.promote(version, reason)
        except Exception:
            registry.restore(before, "restored: register failed")
            raise
        mlflow.log_dict(moved, "reports/aliases.json")
    kp.close_parent(parent_run_id, "FINISHED", stages.EXIT_CODES["promoted"], promoted=True)
    return str(version)


# ------------------------------------------------------------------------------------------------------ the pipeline
@dsl.pipeline(name=PIPELINE_NAME, description="CityBikes: ingest, validate, train, evaluate, register (if better).")
def training_pipeline(
    data_uri: str,
    tracking_uri: str,
    model_name: str = MODEL_NAME,
    experiment: str = KFP_EXPERIMENT,
    window_start: str = "2011-01-01",
    window_end: str = "2011-06-01",
    family: str = PipelineConfig.default("family"),
    holdout_days: int = PipelineConfig.default("holdout_days"),
    max_rmse: float = PipelineConfig.default("max_rmse"),
    min_improvement: float = PipelineConfig.default("min_improvement"),
    reason: str = "kubeflow pipeline run",
):
    ingested = ingest(data_uri=data_uri, tracking_uri=tracking_uri, experiment=experiment, reason=reason)
    run_id = ingested.outputs["parent_run_id"]
    checked = validate(
        raw=ingested.outputs["raw"],
        window_start=window_start,
        window_end=window_end,
        tracking_uri=tracking_uri,
        parent_run_id=run_id,
    )
    trained = train(
        validated=checked.outputs["validated"],
        family=family,
        holdout_days=holdout_days,
        tracking_uri=tracking_uri,
        parent_run_id=run_id,
    )
    evaluated = evaluate(
        model=trained.outputs["model"],
        holdout=trained.outputs["holdout"],
        model_name=model_name,
        max_rmse=max_rmse,
        min_improvement=min_improvement,
        tracking_uri=tracking_uri,
        parent_run_id=run_id,
    )
    with dsl.If(evaluated.outputs["Output"] == True, name="evaluation-passed"):  # noqa: E712 (a KFP condition)
        register(
            model=trained.outputs["model"],
            model_name=model_name,
            reason=reason,
            tracking_uri=tracking_uri,
            parent_run_id=run_id,
        )


def compile_pipeline(path: str | Path, **parameter_defaults) -> Path:
    """Compile :func:`training_pipeline` to the IR YAML a Kubeflow Pipelines cluster runs (new defaults optional)."""
    from kfp import compiler  # here, not at the top: a component importing this module runs inside kfp's executor

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(training_pipeline, str(path), pipeline_parameters=parameter_defaults or None)
    return path


def load_spec(path: str | Path) -> dict:
    """The compiled pipeline spec as a dict (the first YAML document; a second one holds platform config)."""
    import yaml

    with open(path) as handle:
        return next(iter(yaml.safe_load_all(handle)))


def task_edges(spec: dict) -> list[tuple[str, str, str]]:
    """``(producer, output, consumer)`` for every artifact or parameter one task passes to another, sorted."""
    edges = set()

    def walk(dag: dict) -> None:
        for name, task in dag.get("tasks", {}).items():
            inputs = task.get("inputs", {})
            for kind, key in (("artifacts", "taskOutputArtifact"), ("parameters", "taskOutputParameter")):
                for value in inputs.get(kind, {}).values():
                    if key in value:
                        edges.add((value[key]["producerTask"], value[key].get("outputArtifactKey")
                                   or value[key].get("outputParameterKey"), name))  # fmt: skip
            sub = task.get("componentRef", {}).get("name")
            if sub and "dag" in spec["components"].get(sub, {}):
                walk(spec["components"][sub]["dag"])

    walk(spec["root"]["dag"])
    return sorted(edges)


def describe(spec: dict) -> str:
    """A short, stable text summary of a compiled spec: tasks, their images, and the parameters with defaults."""
    params = spec["root"]["inputDefinitions"]["parameters"]
    lines = [f"pipeline {spec['pipelineInfo']['name']}: {len(spec['deploymentSpec']['executors'])} executors"]
    for name, value in sorted(params.items()):
        lines.append(f"  param {name:<16} {value['parameterType']:<14} default={json.dumps(value.get('defaultValue'))}")
    return "\n".join(lines)
