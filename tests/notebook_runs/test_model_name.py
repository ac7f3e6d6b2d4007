"""Every notebook that declares ``MODEL_NAME`` really uses it: run with another name, the default is never touched.

This runs the notebooks headless (about 4-5 minutes), so it is not part of the unit tests: ``make params`` runs it,
and ``make test`` runs it beside the papermill re-run (each uses one of the two cores).
"""

from __future__ import annotations

import mlflow
import papermill as pm
import pytest

from mlops_helpers import course, workspace
from mlops_helpers.names import CHAMPION, MODEL_NAME
from mlops_helpers.registry import Registry

RENAMED = "citybikes-renamed"
#: The notebooks that declare MODEL_NAME, run alone in a fresh workspace (their catch-up cells rebuild the rest).
DECLARING = [p.name[:2] for p in course.notebooks() if "MODEL_NAME" in pm.inspect_notebook(str(p))]


def test_the_notebooks_that_declare_it_are_the_ones_run():
    assert DECLARING == ["03", "04", "05", "07", "08", "09", "10", "12"]


@pytest.fixture(scope="module")
def renamed_run(tmp_path_factory, module_tracking_env):
    root = tmp_path_factory.mktemp("params") / "workspace"
    results = course.run(DECLARING, workspace=root, parameters={"MODEL_NAME": RENAMED})
    workspace.setup(root)
    return root, results


def test_every_notebook_runs_with_another_model_name(renamed_run):
    _, results = renamed_run
    failed = {r.notebook: r.error for r in results if r.status != "ok"}
    assert not failed, failed


def test_the_registry_holds_only_the_renamed_model(renamed_run):
    names = {m.name for m in mlflow.MlflowClient().search_registered_models()}
    assert RENAMED in names and MODEL_NAME not in names, names
    renamed = Registry(RENAMED)
    assert renamed.get(CHAMPION) is not None and renamed.events()  # promoted through the tools, recorded
