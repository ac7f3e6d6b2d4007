"""The CI/CD pipeline as Kubeflow Pipelines v2 components, with MLflow as the metadata store (notebook 08).

Four lightweight components run the six stages of :mod:`mlops_helpers.pipeline`, whose functions they call rather
than copy: ``validate`` -> ``train`` -> ``evaluate``, then, only when evaluation passed (inside a ``dsl.If``),
``release``, which runs the last three stages (register as ``challenger``, integration test on the served model,
promote to ``champion``). They pass typed artifacts: the validated data and the held-out days (``Dataset``), the
fitted model (``Model``, an MLflow model folder), the reports (``Metrics``), the integration test's prediction log
(``Dataset``), and parameters (``parent_run_id``, the verdict ``Output``, the version).

**Why register, test and promote share one component.** They are one transaction on the registry: when the
integration test or the promotion refuses, the version registered a moment earlier must go and the aliases must be
as before, as the command line guarantees. In one container that is a ``try``; split over three pods, the state
before would have to travel between them. And each task is a process that imports MLflow (seconds each, locally and
on a cluster) for a few registry calls.

**MLflow.** ``validate`` opens one *parent* run for the pipeline run (the first step, not the caller, creates it: on
a cluster the caller is ``kfp.Client``, which knows nothing of MLflow, and the pipeline must be complete on its
own); every stage logs a *child* run under it (``mlflow.start_run(parent_run_id=...)``) and records its verdict on
the parent with the command line's tag (``stage.N.<stage>``, :data:`STEPS`). The step that ends the pipeline closes
the parent run with the command line's exit code: ``release`` on success, ``evaluate`` on a refusal, any step that
fails (as ``FAILED``). The tracking server comes in as the ``tracking_uri`` parameter and is set explicitly in every
step: a step never relies on an inherited ``MLFLOW_TRACKING_URI``.

**Refusals.** Bad data *fails* the ``validate`` task (red in the KFP UI; nothing downstream can run on it). A model
that is not good enough is an expected outcome, not an error: ``evaluate`` succeeds with ``passed=False`` and the
``dsl.If`` skips ``release``. A failed integration test fails ``release`` after putting the registry back.

**Caching.** Kubeflow reuses a task's outputs when its inputs did not change. Every step here writes to MLflow or
the registry, outside KFP's view, so caching is off for each of them: a cached ``validate`` would hand out the id of
an old, closed parent run.

**On a cluster** every component runs in :data:`IMAGE`, built from ``docker/kfp-component.Dockerfile`` (the pinned
environment and this package). Components import what they use inside their bodies, because KFP ships a
lightweight component to the cluster as the source of its function, and never ``pip install`` kfp at run time
(``install_kfp_package=False``): the image has it, and the course runs offline.
"""

# No `from __future__ import annotations`: KFP reads the components' type annotations as real types.
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
__all__ = ["IMAGE", "PIPELINE_NAME", "STEPS", "compile_pipeline", "training_pipeline"]


# --------------------------------------------------------------------------------------------------- the components
@dsl.component(base_image=IMAGE, install_kfp_package=False)
def validate(
    data_uri: str,
    window_start: str,
    window_end: str,
    tracking_uri: str,
    experiment: str,
    reason: str,
    validated: Output[Dataset],
    report: Output[Metrics],
) -> NamedTuple("ValidateOutputs", [("parent_run_id", str)]):
    """Open the pipeline's parent run; check the batch against the data contract; write the typed data, or fail."""
    from collections import namedtuple

    import mlflow

    from mlops_helpers import data, names
    from mlops_helpers import kfp_runtime as kp
    from mlops_helpers import pipeline as stages

    source = kp.local_path(data_uri)
    sha256 = data.sha256(source)
    tags = {names.DATA_TAG: data_uri, names.DATA_SHA_TAG: sha256, names.REASON_TAG: reason}
    parent_run_id = kp.open_parent_run(tracking_uri, experiment, tags)
    with kp.step_run(tracking_uri, parent_run_id, "validate"):
        frame, result = stages.validate_data(source, (window_start, window_end))
        mlflow.log_dict(result.to_dict(), "reports/validation.json")
        mlflow.log_metrics({"rows": result.rows, "violations": len(result.violations)})
        report.log_metric("rows", result.rows)
        report.log_metric("violations", len(result.violations))
        if frame is None:
            raise stages.StageRefused("validate", result.verdict(), result.to_dict())
        frame.to_parquet(validated.path)
        validated.metadata.update({"rows": len(frame), "format": "parquet", "source": data_uri, "sha256": sha256})
    return namedtuple("ValidateOutputs", ["parent_run_id"])(parent_run_id)


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
        # suppress_warnings: skip comparing the model's requirements with this environment (about 1 s): train
        # saved it a moment ago in this same image
        candidate = mlflow.pyfunc.load_model(model.path, suppress_warnings=True)
        registry = Registry(model_name)
        champion_version = registry.get(CHAMPION)
        champion = registry.load(champion_version.version) if champion_version is not None else None
        result = stages.evaluate(candidate, champion, pd.read_parquet(holdout.path), max_rmse, min_improvement)
        mlflow.log_dict(asdict(result), "reports/evaluation.json")
        mlflow.set_tag("verdict", result.verdict())
        mlflow.log_metric("holdout_rmse", result.candidate_rmse)
        metrics.log_metric("holdout_rmse", result.candidate_rmse)
        if result.champion_rmse is not None:
            mlflow.log_metric("champion_holdout_rmse", result.champion_rmse)
            mlflow.set_tag("champion_version", champion_version.version)
            metrics.log_metric("champion_holdout_rmse", result.champion_rmse)
        mlflow.MlflowClient().set_tag(parent_run_id, kp.step_tag("evaluate"), "passed" if result.passed else "refused")
    if not result.passed:  # the end of this pipeline run: nothing is registered
        kp.close_parent(parent_run_id, "FINISHED", stages.EXIT_CODES["evaluate"])
    return result.passed


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def release(
    model: Input[Model],
    holdout: Input[Dataset],
    model_name: str,
    reason: str,
    tracking_uri: str,
    parent_run_id: str,
    served: Output[Dataset],
) -> str:
    """Register the model as ``challenger``, test it served on loopback, promote it to ``champion``: notebook 05's
    last three stages, one child run each. A refusal or failure in any of them puts the registry back as it was."""
    from pathlib import Path

    import mlflow
    import pandas as pd

    from mlops_helpers import data, workspace
    from mlops_helpers import kfp_runtime as kp
    from mlops_helpers import pipeline as stages
    from mlops_helpers.names import PIPELINE_RUN_TAG
    from mlops_helpers.registry import Registry

    workspace.connect(tracking_uri)
    registry = Registry(model_name)
    with kp.restoring(registry, registry.state()):
        with kp.step_run(tracking_uri, parent_run_id, "register"):
            version = registry.register(model.metadata["model_uri"], reason, tags={PIPELINE_RUN_TAG: parent_run_id})
        with kp.step_run(tracking_uri, parent_run_id, "integration"):
            example, _ = data.xy(pd.read_parquet(holdout.path).head(3))
            expected = mlflow.pyfunc.load_model(model.path, suppress_warnings=True).predict(example)
            failures = stages.integration_test(f"models:/{model_name}/{version}", example, expected, Path(served.path))
            mlflow.log_artifact(served.path, "reports")
            if failures:
                raise stages.StageRefused("integration", "; ".join(failures), {"failures": failures})
        with kp.step_run(tracking_uri, parent_run_id, "promote"):
            mlflow.log_dict(registry.promote(version, reason), "reports/aliases.json")
    served.metadata.update({"model_uri": f"models:/{model_name}/{version}", "format": "jsonl"})
    kp.close_parent(parent_run_id, "FINISHED", stages.EXIT_CODES["promoted"], promoted=True)
    return version


# ------------------------------------------------------------------------------------------------------ the pipeline
@dsl.pipeline(
    name=PIPELINE_NAME,
    description="CityBikes: validate, train, evaluate; if it passed: register, integration test, promote.",
)
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
    checked = validate(data_uri=data_uri, window_start=window_start, window_end=window_end,
                       tracking_uri=tracking_uri, experiment=experiment, reason=reason)  # fmt: skip
    run = {"tracking_uri": tracking_uri, "parent_run_id": checked.outputs["parent_run_id"]}  # every step logs there
    trained = train(validated=checked.outputs["validated"], family=family, holdout_days=holdout_days, **run)
    model, held_out = trained.outputs["model"], trained.outputs["holdout"]
    evaluated = evaluate(model=model, holdout=held_out, model_name=model_name, max_rmse=max_rmse,
                         min_improvement=min_improvement, **run)  # fmt: skip
    with dsl.If(evaluated.outputs["Output"] == True, name="evaluation-passed"):  # noqa: E712 (a KFP condition)
        released = release(model=model, holdout=held_out, model_name=model_name, reason=reason, **run)
    for task in (checked, trained, evaluated, released):
        task.set_caching_options(enable_caching=False)  # each writes to MLflow or the registry, unseen by KFP


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
