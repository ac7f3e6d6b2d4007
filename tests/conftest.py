"""Shared fixtures: every test gets its own workspace, so nothing touches the learner's."""

from __future__ import annotations

import pytest


@pytest.fixture
def tmp_workspace(tmp_path, monkeypatch):
    """A fresh workspace folder, set as ``COURSE_WORKSPACE`` for the test."""
    root = tmp_path / "workspace"
    monkeypatch.setenv("COURSE_WORKSPACE", str(root))
    return root
