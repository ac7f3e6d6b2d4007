"""The Kubeflow pipeline of notebook 08: it compiles to the IR YAML a cluster runs, with the components, parameters,
edges and condition we mean, in the course image, with no pip install at run time; and the image installs the pins."""

from __future__ import annotations

import re

import pytest

from mlops_helpers import REPO_ROOT, __version__, kfp_pipeline

DOCKERFILE = REPO_ROOT / "docker" / "kfp-component.Dockerfile"


@pytest.fixture(scope="module")
def spec(tmp_path_factory):
    path = kfp_pipeline.compile_pipeline(tmp_path_factory.mktemp("kfp") / "pipeline.yaml")
    return kfp_pipeline.load_spec(path)


def test_components_are_four_tasks_and_the_condition(spec):
    assert sorted(spec["components"]) == [
        "comp-condition-1", "comp-evaluate", "comp-release", "comp-train", "comp-validate"
    ]  # fmt: skip
    assert sorted(spec["root"]["dag"]["tasks"]) == ["condition-1", "evaluate", "train", "validate"]
    assert list(spec["components"]["comp-condition-1"]["dag"]["tasks"]) == ["release"]


def test_the_steps_are_the_command_line_stages_with_the_same_tags():
    from mlops_helpers import kfp_runtime, pipeline

    assert kfp_pipeline.STEPS == pipeline.STAGE_NAMES
    assert [kfp_runtime.step_tag(step) for step in kfp_pipeline.STEPS] == [
        pipeline.stage_tag(stage) for stage in pipeline.STAGE_NAMES
    ]


def test_parameters_have_types_and_defaults(spec):
    params = spec["root"]["inputDefinitions"]["parameters"]
    assert params["data_uri"]["parameterType"] == "STRING" and "defaultValue" not in params["data_uri"]
    assert params["tracking_uri"]["parameterType"] == "STRING" and "defaultValue" not in params["tracking_uri"]
    expected = {
        "model_name": ("STRING", "citybikes-demand"),
        "window_start": ("STRING", "2011-01-01"),
        "window_end": ("STRING", "2011-06-01"),
        "holdout_days": ("NUMBER_INTEGER", 14),
        "max_rmse": ("NUMBER_DOUBLE", 80.0),
        "min_improvement": ("NUMBER_DOUBLE", 0.05),
    }
    for name, (kind, default) in expected.items():
        assert (params[name]["parameterType"], params[name]["defaultValue"]) == (kind, default), name


def test_typed_artifacts_flow_along_the_edges(spec):
    edges = set(kfp_pipeline.task_edges(spec))
    assert edges == {
        ("validate", "validated", "train"),
        ("train", "model", "evaluate"),
        ("train", "holdout", "evaluate"),
        ("train", "model", "condition-1"),
        ("train", "holdout", "condition-1"),
        ("evaluate", "Output", "condition-1"),
        *(("validate", "parent_run_id", consumer) for consumer in ("train", "evaluate", "condition-1")),
    }
    types = {
        (comp, name): value["artifactType"]["schemaTitle"]
        for comp, body in spec["components"].items()
        for name, value in body.get("outputDefinitions", {}).get("artifacts", {}).items()
    }
    assert types[("comp-validate", "validated")] == types[("comp-train", "holdout")] == "system.Dataset"
    assert types[("comp-release", "served")] == "system.Dataset"
    assert types[("comp-train", "model")] == "system.Model"
    assert types[("comp-evaluate", "metrics")] == types[("comp-validate", "report")] == "system.Metrics"


def test_registration_runs_only_when_evaluation_passed(spec):
    condition = spec["root"]["dag"]["tasks"]["condition-1"]
    assert condition["dependentTasks"] == ["evaluate", "train", "validate"]
    expected = "inputs.parameter_values['pipelinechannel--evaluate-Output'] == true"
    assert condition["triggerPolicy"]["condition"] == expected


def test_no_task_is_cached(spec):
    """Every step writes to MLflow or the registry: a cached step would skip that (and reuse a closed parent run)."""
    tasks = {**spec["root"]["dag"]["tasks"], **spec["components"]["comp-condition-1"]["dag"]["tasks"]}
    steps = {name: task for name, task in tasks.items() if name != "condition-1"}
    assert sorted(steps) == ["evaluate", "release", "train", "validate"]
    assert not any(task.get("cachingOptions", {}).get("enableCache") for task in steps.values())


def test_executors_use_the_course_image_and_never_pip_install(spec):
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 4
    for name, executor in executors.items():
        container = executor["container"]
        assert container["image"] == kfp_pipeline.IMAGE == f"citybikes-mlops:{__version__}", name
        command = " ".join(container["command"] + container.get("args", []))
        assert "pip install" not in command and "pip3 install" not in command, name
        assert "from mlops_helpers import" in command, f"{name} imports the package inside its body"


def test_new_defaults_at_compile_time(tmp_path):
    spec = kfp_pipeline.load_spec(kfp_pipeline.compile_pipeline(tmp_path / "p.yaml", max_rmse=60.0))
    assert spec["root"]["inputDefinitions"]["parameters"]["max_rmse"]["defaultValue"] == 60.0


def test_the_component_image_installs_the_pins_then_the_package():
    text = DOCKERFILE.read_text()
    instructions = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert instructions[0] == "FROM python:3.11-slim"
    steps = [line.strip() for line in instructions]
    order = [
        next(i for i, s in enumerate(steps) if s.startswith("COPY requirements.lock")),
        next(i for i, s in enumerate(steps) if re.match(r"RUN pip install -r /tmp/build/requirements\.lock$", s)),
        next(i for i, s in enumerate(steps) if s.startswith("COPY mlops_helpers")),
        next(i for i, s in enumerate(steps) if s.startswith("RUN pip install --no-deps /tmp/build && rm -rf")),
    ]
    assert order == sorted(order)
    # the sources are gone and the image checks the installed package from another directory
    assert "WORKDIR /tmp" in steps and any(s.startswith("RUN cd / && python -c") for s in steps)
    assert f"citybikes-mlops:{__version__}" in text, "the build comment names the image the components use"


def test_data_uri_is_a_path_or_a_file_uri(tmp_path):
    from mlops_helpers import kfp_runtime

    target = tmp_path / "a b.csv"
    assert kfp_runtime.local_path(str(target)) == target
    assert kfp_runtime.local_path(target.as_uri()) == target
    with pytest.raises(ValueError, match="s3://"):
        kfp_runtime.local_path("s3://bucket/batch.csv")


class _RecordingRegistry:
    def __init__(self) -> None:
        self.restored: list[tuple[dict, str]] = []

    def restore(self, state: dict, why: str) -> None:
        self.restored.append((state, why))


def test_a_refused_release_puts_the_registry_back_and_still_fails():
    from mlops_helpers import kfp_runtime
    from mlops_helpers.pipeline import StageRefused

    before = {"exists": True, "aliases": {"champion": "1"}, "versions": [1]}
    registry = _RecordingRegistry()
    with pytest.raises(StageRefused), kfp_runtime.restoring(registry, before):
        raise StageRefused("integration", "the service answered 500")
    with pytest.raises(KeyError), kfp_runtime.restoring(registry, before):
        raise KeyError("model_uri")
    with kfp_runtime.restoring(registry, before):
        pass  # nothing raised: nothing restored
    assert registry.restored == [(before, "restored: refused at integration"), (before, "restored: the release failed")]


@pytest.mark.filterwarnings("ignore:You may be attemping to run a task that uses custom")  # local means this venv
def test_a_local_run_the_gate_refuses_never_releases(tmp_workspace, tmp_path, monkeypatch):
    """kfp.local runs the pipeline; `evaluate` refuses (a threshold no model meets): `release` never runs, nothing is
    registered, and the parent run carries the command line's verdict and exit code."""
    import contextlib
    import io

    import mlflow
    from kfp import local

    from mlops_helpers import data, names, pipeline, workspace

    monkeypatch.chdir(tmp_path)  # a new experiment on a SQLite store keeps its artifacts under ./mlruns
    workspace.setup()
    batch = tmp_path / "jan-may.csv"
    data.source_batch("2011-01-01:2011-06-01").to_csv(batch, index=False)
    uri = f"sqlite:///{tmp_path / 'kfp.db'}"  # not the workspace's database: the steps must use the parameter
    runs = tmp_path / "runs"
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(runs), workspace_root=str(runs / "ws"))
    with contextlib.redirect_stdout(io.StringIO()):
        kfp_pipeline.training_pipeline(data_uri=batch.as_uri(), tracking_uri=uri, max_rmse=1.0)
    assert not list(runs.glob("*/release"))  # the dsl.If skipped the release
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert client.search_registered_models() == []
    experiment = client.get_experiment_by_name(names.KFP_EXPERIMENT)
    (parent,) = client.search_runs([experiment.experiment_id], "tags.mlflow.runName = 'kfp-pipeline'")
    tags = parent.data.tags
    assert parent.info.status == "FINISHED" and tags[names.EXIT_CODE_TAG] == str(pipeline.EXIT_CODES["evaluate"])
    assert [tags.get(pipeline.stage_tag(s)) for s in pipeline.STAGE_NAMES] == ["passed", "passed", "refused", None,
                                                                               None, None]  # fmt: skip
    assert mlflow.get_experiment_by_name(names.KFP_EXPERIMENT) is None  # the workspace's database never saw it
