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


def test_components_are_the_five_stages_and_the_condition(spec):
    assert sorted(spec["components"]) == sorted(
        ["comp-condition-1", *(f"comp-{step}" for step in kfp_pipeline.STEPS if step != "register"), "comp-register"]
    )
    assert sorted(spec["root"]["dag"]["tasks"]) == ["condition-1", "evaluate", "ingest", "train", "validate"]
    assert list(spec["components"]["comp-condition-1"]["dag"]["tasks"]) == ["register"]


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
    for edge in [
        ("ingest", "raw", "validate"),
        ("validate", "validated", "train"),
        ("train", "model", "evaluate"),
        ("train", "holdout", "evaluate"),
        ("train", "model", "condition-1"),
        ("evaluate", "Output", "condition-1"),
        ("ingest", "parent_run_id", "train"),
    ]:
        assert edge in edges, edge
    types = {
        (comp, name): value["artifactType"]["schemaTitle"]
        for comp, body in spec["components"].items()
        for name, value in body.get("outputDefinitions", {}).get("artifacts", {}).items()
    }
    assert types[("comp-ingest", "raw")] == types[("comp-train", "holdout")] == "system.Dataset"
    assert types[("comp-train", "model")] == "system.Model"
    assert types[("comp-evaluate", "metrics")] == types[("comp-validate", "report")] == "system.Metrics"


def test_registration_runs_only_when_evaluation_passed(spec):
    condition = spec["root"]["dag"]["tasks"]["condition-1"]
    assert condition["dependentTasks"] == ["evaluate", "ingest", "train"]
    expected = "inputs.parameter_values['pipelinechannel--evaluate-Output'] == true"
    assert condition["triggerPolicy"]["condition"] == expected


def test_executors_use_the_course_image_and_never_pip_install(spec):
    executors = spec["deploymentSpec"]["executors"]
    assert len(executors) == 5
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
