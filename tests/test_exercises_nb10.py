"""Notebook 10's exercise checks: "not yet" on the empty answer, the common mistakes named, the solution's way passes.

The state is real: the pipeline's January-May release as champion (as notebooks 05 and 10 have it), two other
versions (one validated on the champion's training rows, one that logged no data), a model card generated from the
registry, and a prediction log row as the service writes it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from exercise_checks import not_yet, passes
from sklearn.dummy import DummyRegressor

from mlops_helpers import data, exercises, pipeline, workspace
from mlops_helpers.governance import card as cards
from mlops_helpers.names import MODEL_NAME

OWNER = "citybikes-ml@example.org"


@pytest.fixture(scope="module")
def state(tmp_path_factory, module_tracking_env):
    ws = workspace.setup(tmp_path_factory.mktemp("nb10") / "workspace", experiment="exercise-test-10")
    batch = ws.path("batches", "bikes-2011-01-to-05.csv")
    data.source_batch("2011-01-01:2011-06-01").to_csv(batch, index=False)
    config = pipeline.PipelineConfig(data=batch, window=("2011-01-01", "2011-06-01"), integration_test=False)
    result = pipeline.run_pipeline(config, echo=lambda *_: None)
    assert result.promoted
    client = mlflow.MlflowClient()
    # two more versions: one whose run logged the champion's training rows as its *validation* data, one with none
    release_run = client.get_run(client.get_model_version(MODEL_NAME, result.version).run_id)
    (training,) = [d.dataset for d in release_run.inputs.dataset_inputs if d.tags[0].value == "training"]
    train_rows, _ = pipeline.split_holdout(data.prepare_bikes(pd.read_csv(batch)),
                                           int(release_run.data.params["holdout_days"]))  # fmt: skip
    same = mlflow.data.from_pandas(train_rows.reset_index(), source=str(batch), name=training.name,
                                   targets=data.TARGET)  # fmt: skip
    assert same.digest == training.digest
    others = []
    for logs_rows in (True, False):
        with mlflow.start_run(run_name="validated-on-the-champions-rows" if logs_rows else "no-datasets"):
            if logs_rows:
                mlflow.log_input(same, context="validation")
            info = mlflow.sklearn.log_model(DummyRegressor().fit([[0.0]], [0.0]), name="model")
        others.append(str(mlflow.register_model(info.model_uri, MODEL_NAME).version))
    first = others[0]
    client.set_registered_model_tag(MODEL_NAME, cards.OWNER_TAG, OWNER)
    log = ws.root / "predictions" / "governance-june.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    row = {"request_id": "r1", "row": 0, "time": "2026-01-01T00:00:00+00:00", "model": MODEL_NAME,
           "version": result.version, "prediction": 30.5, "features": {}}  # fmt: skip
    log.write_text(json.dumps(row) + "\n")
    return client, first, str(result.version), others[1], log, exercises.notebook_10(MODEL_NAME, log)


def test_every_check_says_not_yet_on_the_empty_answer(state):
    for q in state[-1]:
        not_yet(q.check(None), "no answer: replace `...`")


def test_1_the_versions_trained_on_the_champions_rows(state):
    client, first, release, no_data, _, (q1, _, _) = state

    def training_digest(run_id):
        for item in client.get_run(run_id).inputs.dataset_inputs if run_id else []:
            if {tag.key: tag.value for tag in item.tags}.get("mlflow.data.context") == "training":
                return item.dataset.digest
        return None

    champion = client.get_model_version_by_alias(MODEL_NAME, "champion")
    versions = client.search_model_versions(f"name = '{MODEL_NAME}'")
    same_rows = sorted((str(v.version) for v in versions if training_digest(v.run_id) == training_digest(
        champion.run_id)), key=int)  # fmt: skip
    assert release in same_rows and first not in same_rows
    not_yet(q1.check([]), f"missing ['{release}']")
    not_yet(q1.check([*same_rows, first]), f"version {first}'s run has the champion's digest", "'validation'")
    not_yet(q1.check([*same_rows, no_data]), f"version {no_data} should not be in the list", "no training dataset")
    not_yet(q1.check(["99"]), "no such version")
    not_yet(q1.check(release), "should be a list")
    passes(q1.check(same_rows))
    passes(q1.check([int(v) for v in same_rows]))  # numbers as the store gives them
    passes(q1.check([v for v in versions if str(v.version) in same_rows]))  # ModelVersion objects


def test_2_an_owner_for_the_champion_only(state):
    client, _, release, _, _, (_, q2, _) = state
    not_yet(q2.check(42), "should be a str")
    not_yet(q2.check("# my card"), "not a model card")
    model_owned = cards.model_card(MODEL_NAME, release, client)
    not_yet(q2.check(model_owned), "the registered model's owner", "set_model_version_tag")
    client.set_model_version_tag(MODEL_NAME, release, cards.OWNER_TAG, "ops-oncall@example.org")
    owned = cards.model_card(MODEL_NAME, release, client)
    not_yet(q2.check(owned), "remove it", "delete_model_version_tag")
    client.delete_model_version_tag(MODEL_NAME, release, cards.OWNER_TAG)
    # a card typed or edited by hand: only the accountable line may differ from what the package writes
    edited = owned.replace(owned.splitlines()[0], owned.splitlines()[0] + " (final)")
    not_yet(q2.check(edited), "line 1 of your card", "unedited")
    not_yet(q2.check(owned + "\n- an extra line"), "unedited")
    verdict = q2.check(owned)
    passes(verdict)
    assert "ops-oncall@example.org" in verdict.message


def test_3_from_one_logged_answer_to_its_data(state):
    client, first, release, _, log, (_, _, q3) = state
    row = json.loads(log.read_text().splitlines()[0])
    origin = client.get_run(client.get_model_version(row["model"], str(row["version"])).run_id)
    files = {Path(json.loads(item.dataset.source)["uri"]).name for item in origin.inputs.dataset_inputs}
    (data_file,) = files
    right = {"version": row["version"], "run": origin.info.run_id, "data file": data_file}
    not_yet(q3.check({"version": row["version"]}), "lacks the key(s)", "run")
    not_yet(q3.check({**right, "version": "champion"}), "is an alias")
    not_yet(q3.check({**right, "version": first}), f"answered by version {release}")
    first_run = client.get_model_version(MODEL_NAME, first).run_id
    not_yet(q3.check({**right, "run": first_run}), "logged by another run")
    sha = hashlib.sha256(Path(json.loads(origin.inputs.dataset_inputs[0].dataset.source)["uri"]).read_bytes())
    not_yet(q3.check({**right, "data file": sha.hexdigest()}), "a digest or a checksum")
    not_yet(q3.check({**right, "data file": "Bikeshare.csv"}), "from its datasets' source")
    passes(q3.check(right))
    passes(q3.check({**right, "run": origin.info.run_name, "version": int(row["version"])}))
    # a second run of the same name (every pipeline run is named after its family): the name no longer says which
    with mlflow.start_run(run_name=origin.info.run_name, experiment_id=origin.info.experiment_id):
        pass
    not_yet(q3.check({**right, "run": origin.info.run_name}), "2 runs are named", "the run's id")
    passes(q3.check(right))
