"""Catch-up cells rebuild an earlier notebook's state only when it is missing, and never twice."""

from __future__ import annotations

import mlflow

from mlops_helpers import catchup, workspace
from mlops_helpers.names import MODEL_NAME
from mlops_helpers.registry import Registry


def test_runs_then_champion_are_rebuilt_once(tmp_workspace):
    ws = workspace.setup()
    runs = catchup.ensure_runs(ws)
    assert len(runs) == len(catchup.CATCHUP_SWEEP)
    assert set(runs["tags.catchup"]) == {"true"}
    assert runs["metrics.val_rmse"].is_monotonic_increasing
    again = catchup.ensure_runs(ws)
    assert sorted(again["run_id"]) == sorted(runs["run_id"])  # nothing retrained

    champion = catchup.ensure_champion(ws)
    assert int(champion.version) == 1 and champion.run_id == runs.iloc[0]["run_id"]
    assert int(catchup.ensure_champion(ws).version) == 1  # nothing re-registered
    client = mlflow.MlflowClient()
    assert len(client.search_model_versions(f"name = '{MODEL_NAME}'")) == 1
    model = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}@champion")
    assert model.metadata.get_input_schema().input_names()[0] == "hr"


def test_release_is_built_once_and_the_alias_goes_back_to_it(tmp_workspace):
    ws = workspace.setup()
    batch = str(ws.path("batches", "bikes-2011-01-to-05.csv"))
    release = catchup.ensure_release(ws, batch, ("2011-01-01", "2011-06-01"))
    client = mlflow.MlflowClient()
    assert release.tags["pipeline_run"] and str(release.version) == "2"  # the catch-up champion was version 1
    client.set_registered_model_alias(MODEL_NAME, "champion", "1")  # a later model took its place
    again = catchup.ensure_release(ws, batch, ("2011-01-01", "2011-06-01"))
    assert again.version == release.version  # back to the release, nothing retrained
    assert len(client.search_model_versions(f"name = '{MODEL_NAME}'")) == 2
    registry = Registry(MODEL_NAME)
    assert registry.events()[-1]["why"] == "catch-up: back to the release"
    recorded = len(registry.events())
    catchup.ensure_release(ws, batch, ("2011-01-01", "2011-06-01"))  # the champion is the release already
    assert len(registry.events()) == recorded  # so no move, and no event that moves nothing
