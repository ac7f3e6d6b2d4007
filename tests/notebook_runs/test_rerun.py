"""The re-run: every student notebook, run again in the workspace ``make nbval`` just used, with another model name.

One headless run of the whole course (``make rerun``; in CI on the second Python) proves four things at once:
- **re-running works**: every notebook runs again in a workspace that already holds a full run (its experiments,
  registry, logs and reports), as a learner's second pass does;
- **the student edition runs**: the notebooks without their solution cells, top to bottom;
- **MODEL_NAME is honoured**: the notebooks that declare it get ``citybikes-renamed``, and the default model, which
  the first run registered and promoted, is never touched: its versions, tags, aliases and audit events are what they
  were before the re-run, while the renamed model gets its own champion through the same tools;
- on the Python that ``make test`` names as the newest (``NEWEST_VENV``), when it names one.

Not part of the unit tests (about 10-13 minutes): ``make rerun`` runs it after ``make nbval``.
"""

from __future__ import annotations

import os
from pathlib import Path

import mlflow
import papermill as pm
import pytest

from mlops_helpers import REPO_ROOT, course, workspace
from mlops_helpers.names import CHAMPION, MODEL_NAME
from mlops_helpers.registry import Registry

RENAMED = "citybikes-renamed"
#: The workspace of the first run (nbval's) and the notebooks to run again (the student edition, `make student`).
RERUN_WORKSPACE = Path(os.environ.get("COURSE_RERUN_WORKSPACE", REPO_ROOT / "workspace" / "nbval"))
RERUN_NOTEBOOKS = Path(os.environ.get("COURSE_RERUN_NOTEBOOKS", REPO_ROOT / "student"))


def _model_state(name: str) -> dict:
    """Everything a run could change about a registered model: versions, their tags and runs, aliases, audit events."""
    client = mlflow.MlflowClient()
    versions = client.search_model_versions(f"name = '{name}'")
    model = client.get_registered_model(name)
    return {
        "versions": sorted((int(v.version), v.run_id, v.source, tuple(sorted(v.tags.items()))) for v in versions),
        "aliases": dict(sorted(model.aliases.items())),
        "tags": dict(sorted(model.tags.items())),
        "events": Registry(name).events(),
    }


def test_the_notebooks_that_declare_it_are_the_ones_renamed():
    declaring = [p.name[:2] for p in course.notebooks() if "MODEL_NAME" in pm.inspect_notebook(str(p))]
    assert declaring == ["03", "04", "05", "07", "08", "09", "10", "12"]


@pytest.fixture(scope="module")
def rerun(module_tracking_env):
    if not (RERUN_WORKSPACE / "mlflow.db").exists():
        pytest.fail(f"no first run in {RERUN_WORKSPACE}: run `make nbval` first (the re-run runs in its workspace)")
    if not any(RERUN_NOTEBOOKS.glob("[0-9][0-9]_*.ipynb")):
        pytest.fail(f"no notebooks in {RERUN_NOTEBOOKS}: run `make student` first")
    workspace.setup(RERUN_WORKSPACE)
    before = _model_state(MODEL_NAME)
    assert before["aliases"].get(CHAMPION), "the first run left no champion: was it a full run?"
    results = course.run(
        None, workspace=RERUN_WORKSPACE, notebook_dir=RERUN_NOTEBOOKS, parameters={"MODEL_NAME": RENAMED}
    )
    workspace.setup(RERUN_WORKSPACE)
    return results, before


def test_every_student_notebook_runs_again_in_the_used_workspace(rerun):
    results, _ = rerun
    assert [r.notebook[:2] for r in results] == [p.name[:2] for p in course.notebooks()]
    failed = {r.notebook: r.error for r in results if r.status != "ok"}
    assert not failed, failed


def test_the_default_model_is_never_touched(rerun):
    _, before = rerun
    assert _model_state(MODEL_NAME) == before


def test_the_renamed_model_is_promoted_through_the_tools(rerun):
    renamed = Registry(RENAMED)
    assert renamed.get(CHAMPION) is not None
    assert renamed.events(), "the renamed model's promotions were not recorded"
