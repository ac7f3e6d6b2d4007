"""Shared fixtures: every test gets its own workspace, so nothing touches the learner's."""

from __future__ import annotations

import os

import pytest

#: Marked ``slow`` (make test runs them once, on 3.11; ``make unit-newest`` leaves them out on the second Python):
#: whole modules of pipeline and registry logic that train and register models run after run, and the tests that
#: execute notebooks, start servers for long, kill pipelines, or validate every manifest. What they test does not
#: depend on the Python version, and the re-run executes every notebook on the second Python anyway. Together about
#: three quarters of the unit tests' time (``--durations``). A test keeps the names honest.
SLOW_MODULES = (
    "test_pipeline.py",
    "test_registry.py",
    "test_alerting_notebook.py",
    "test_tracking_server_notebook.py",
    "test_lab_proxy.py",
    # the exercise checks that start servers, train and register models or run the pipeline (60-180 s each)
    "test_exercises_nb02.py",
    "test_exercises_nb04.py",
    "test_exercises_nb05.py",
    "test_exercises_nb07.py",
    "test_exercises_nb09.py",
    "test_exercises_nb10.py",
    "test_exercises_nb11.py",
)
SLOW_TESTS = (
    "test_release.py::test_notebook_09_guard_rolls_back_without_prometheus",
    "test_serving.py::test_fuzzing_the_openapi_finds_no_server_error",
    "test_faults.py::test_a_killed_run_leaves_nothing_the_audit_or_the_next_run_gets_wrong",
    "test_faults.py::test_two_overlapping_runs_lose_no_promotion",
    "test_kfp_pipeline.py::test_a_local_run_the_gate_refuses_never_releases",
    "test_protocols.py::test_every_format_predicts_what_mlflow_models_serve_predicts",
    "test_manifests.py::test_every_generated_manifest_validates_against_its_real_crd_strictly",
    "test_governance.py::test_lineage_puts_the_dvc_version_a_run_recorded_between_the_file_and_its_dataset",
    "test_catchup.py::test_runs_then_champion_are_rebuilt_once",
    "test_workflows.py::test_the_throw_away_tracking_server_is_stopped_with_its_whole_process_tree",
)


def pytest_collection_modifyitems(items):
    for item in items:
        module, name = item.path.name, getattr(item, "originalname", item.name)
        if module in SLOW_MODULES or f"{module}::{name}" in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


#: What ``workspace.setup`` (through ``mlflow.set_tracking_uri``) writes into the process environment.
TRACKING_ENV = ("COURSE_WORKSPACE", "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")


@pytest.fixture
def tmp_workspace(tmp_path, monkeypatch):
    """A fresh workspace folder, set as ``COURSE_WORKSPACE`` for the test."""
    root = tmp_path / "workspace"
    monkeypatch.setenv("COURSE_WORKSPACE", str(root))
    return root


@pytest.fixture(scope="module")
def module_tracking_env():
    """For module-scoped workspaces: the tracking variables as they were before the module, restored after it."""
    saved = {name: os.environ.get(name) for name in TRACKING_ENV}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="module")
def ridge_challenger(tmp_path_factory, module_tracking_env, request):
    """A throw-away workspace with the champion (the best run) and, as challenger, notebook 01's ridge run registered:
    ``(ws, champion version, challenger version)``. One per test module that asks for it."""
    import mlflow

    from mlops_helpers import catchup, workspace
    from mlops_helpers.names import MODEL_NAME
    from mlops_helpers.registry import Registry

    ws = workspace.setup(tmp_path_factory.mktemp(request.module.__name__.removeprefix("test_")) / "workspace")
    champion = catchup.ensure_champion(ws)
    runs = catchup.ensure_runs(ws)
    ridge = runs[runs["tags.family"] == "ridge"].iloc[0]
    model_id = mlflow.get_run(ridge["run_id"]).outputs.model_outputs[0].model_id
    challenger = mlflow.register_model(f"models:/{model_id}", MODEL_NAME)
    Registry(MODEL_NAME).move("challenger", challenger.version, f"{request.module.__name__}: the ridge run")
    return ws, str(champion.version), str(challenger.version)
