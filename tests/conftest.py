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
