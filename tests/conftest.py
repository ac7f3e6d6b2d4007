"""Shared fixtures: every test gets its own workspace, so nothing touches the learner's."""

from __future__ import annotations

import os

import pytest

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
