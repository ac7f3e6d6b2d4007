"""The workspace: one call sets the folder and the tracking URI; telemetry is off."""

from __future__ import annotations

import os

import mlflow

from mlops_helpers import REPO_ROOT, workspace


def test_default_root_follows_the_environment(tmp_workspace, monkeypatch):
    assert workspace.default_root() == tmp_workspace.resolve()
    monkeypatch.delenv("COURSE_WORKSPACE")
    assert workspace.default_root() == REPO_ROOT / "workspace"


def test_setup_points_tracking_and_registry_into_the_workspace(tmp_workspace, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # artifacts must not land in the current folder
    ws = workspace.setup(experiment="unit-test")
    assert ws.root == tmp_workspace.resolve() and ws.root.is_dir()
    assert mlflow.get_tracking_uri() == f"sqlite:///{tmp_workspace.resolve() / 'mlflow.db'}"
    assert mlflow.get_registry_uri() == mlflow.get_tracking_uri()
    with mlflow.start_run() as run:
        mlflow.log_text("hello", "note.txt")
    artifact_uri = mlflow.get_run(run.info.run_id).info.artifact_uri
    assert artifact_uri.startswith((ws.artifacts / "unit-test").as_uri())
    assert (ws.artifacts / "unit-test").is_dir()
    assert not (tmp_path / "mlruns").exists()


def test_setup_twice_reuses_the_experiment(tmp_workspace):
    first = workspace.ensure_experiment(workspace.setup(), "again")
    second = workspace.ensure_experiment(workspace.setup(), "again")
    assert first == second


def test_quiet_turns_telemetry_off(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    workspace.quiet()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true" and os.environ["DO_NOT_TRACK"] == "true"
