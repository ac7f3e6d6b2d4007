"""Notebook 10's exercises, checked against the learner's registry, tracking store and prediction log."""

from __future__ import annotations

import json
import re
from functools import partial
from pathlib import Path
from typing import Any

from mlops_helpers.exercises import Exercise, NotYet, as_list, expect_keys, expect_same_set, expect_type

CONTEXT_TAG = "mlflow.data.context"


def _digests(client, run_id: str | None) -> dict[str, str]:
    """The run's dataset inputs: context -> MLflow digest (empty when the run logged none)."""
    if not run_id:
        return {}
    found = {}
    for item in client.get_run(run_id).inputs.dataset_inputs:
        context = {tag.key: tag.value for tag in item.tags}.get(CONTEXT_TAG)
        found[context] = item.dataset.digest
    return found


# --- 1. Same data, which versions?


def _same_training_rows(model_name: str, answer: Any) -> str:
    from mlflow import MlflowClient

    client = MlflowClient()
    answer = [str(getattr(a, "version", a)) for a in as_list(answer, "the versions")]  # ModelVersions, as search gives
    champion = client.get_model_version_by_alias(model_name, "champion")
    digest = _digests(client, champion.run_id).get("training")
    inputs = {
        str(v.version): _digests(client, v.run_id) for v in client.search_model_versions(f"name = '{model_name}'")
    }
    unknown = sorted(set(answer) - set(inputs), key=str)
    if unknown:
        raise NotYet(f"{unknown}: no such version of {model_name!r}; it has versions {sorted(inputs, key=int)}")
    same = sorted((v for v, d in inputs.items() if d.get("training") == digest), key=int)
    for version in answer:
        found = inputs[version]
        if version not in same and digest in found.values():
            context = next(c for c, d in found.items() if d == digest)
            raise NotYet(
                f"version {version}'s run has the champion's digest {digest} as its {context!r} dataset, "
                "not as its training rows: filter on the context tag 'mlflow.data.context' == 'training'"
            )
        if version not in same:
            what = f"trained on digest {found['training']}" if "training" in found else "logged no training dataset"
            raise NotYet(f"version {version} should not be in the list: its run {what}; the champion's is {digest}")
    expect_same_set(answer, same, f"the versions trained on the champion's rows (digest {digest})")
    return (
        f"{len(same)} version(s) trained on digest {digest}: the same rows, whatever their runs' names; a digest "
        "compares the data itself, so this holds even when the file was copied or renamed."
    )


# --- 2. An owner for one version


def _owner_card(model_name: str, answer: Any) -> str:
    from mlflow import MlflowClient

    from mlops_helpers.governance.card import OWNER_TAG

    client = MlflowClient()
    card = expect_type(answer, str, "your answer (the regenerated card's markdown)")
    header = re.search(r"^# Model card: (\S+) version (\S+)", card, flags=re.MULTILINE)
    accountable = re.findall(r"^- accountable: (.*)$", card, flags=re.MULTILINE)
    if header is None or not accountable:
        raise NotYet(
            "this is not a model card: answer the text `cards.model_card(MODEL_NAME, number, client)` "
            "returned while the version's tag was set"
        )
    champion = str(client.get_model_version_by_alias(model_name, "champion").version)
    if (header[1], header[2]) != (model_name, champion):
        raise NotYet(f"the card is of {header[1]} version {header[2]}; the champion is version {champion}")
    model_owner = client.get_registered_model(model_name).tags.get(OWNER_TAG)
    shown = accountable[0]
    if shown == model_owner or shown.startswith("_not recorded"):
        raise NotYet(
            f"the card shows {shown!r}, the registered model's owner: set the version's tag "
            f"{OWNER_TAG!r} first (client.set_model_version_tag), then generate the card again"
        )
    # the rest of the card as the package writes it now (the tag gone): only the accountable line may differ
    from mlops_helpers.governance.card import model_card

    now = model_card(model_name, champion, client).splitlines()
    given = card.splitlines()
    pairs = enumerate(zip(given, now, strict=False))
    differ = [(i, a, b) for i, (a, b) in pairs if a != b and not a.startswith("- accountable:")]
    if differ or len(given) != len(now):
        i, a, b = differ[0] if differ else (min(len(given), len(now)), "(end)", "(end)")
        raise NotYet(
            f"line {i + 1} of your card reads {a[:80]!r}, the generated card {b[:80]!r}: answer the text "
            "cards.model_card(MODEL_NAME, number, client) returned while the tag was set, unedited"
        )
    left = client.get_model_version(model_name, champion).tags.get(OWNER_TAG)
    if left is not None:
        raise NotYet(
            f"the card shows {shown!r}, but the version still has the tag {OWNER_TAG}={left!r}: remove it "
            "again (client.delete_model_version_tag), as the notebook left things"
        )
    return (
        f"the card named {shown} for version {champion} (a version tag wins over the registered model's "
        f"{model_owner!r}), and the tag is gone again: every other version keeps the model's owner."
    )


# --- 3. From one answer to its data


def _answer_to_data(model_name: str, served_log: Path, answer: Any) -> str:
    from mlflow import MlflowClient

    client = MlflowClient()
    expect_keys(answer, ["version", "run", "data file"], "your answer")
    lines = Path(served_log).read_text().splitlines()
    if not lines:
        raise NotYet(f"the June log {Path(served_log).name} is empty: run the notebook's serving cell again")
    row = json.loads(lines[0])
    version = str(row["version"])
    given = str(answer["version"])
    if given.lstrip("@") in client.get_registered_model(row["model"]).aliases:
        raise NotYet(f"{given!r} is an alias, which may have moved since: answer the version number the log row names")
    if given != version:
        raise NotYet(f"version {given}: the first row of the log was answered by version {version} (its 'version')")
    mv = client.get_model_version(row["model"], version)
    run = client.get_run(mv.run_id)
    if str(answer["run"]) not in (run.info.run_id, run.info.run_name):
        raise NotYet(
            f"run {answer['run']!r}: version {version} was logged by another run; "
            "client.get_model_version(...).run_id names it (its id or its name is an answer)"
        )
    namesakes = client.search_runs([run.info.experiment_id], f"attributes.run_name = '{run.info.run_name}'")
    if str(answer["run"]) == run.info.run_name and len(namesakes) > 1:
        raise NotYet(
            f"{len(namesakes)} runs are named {run.info.run_name!r}: a name does not say which one; answer the "
            "run's id (client.get_model_version(...).run_id)"
        )
    files = {Path(json.loads(item.dataset.source)["uri"]).name for item in run.inputs.dataset_inputs}
    data_file = str(answer["data file"])
    if re.fullmatch(r"[0-9a-f]{8,64}", data_file):
        raise NotYet(
            f"{data_file!r} is a digest or a checksum: answer the data file's name, from the dataset's "
            "source (json.loads(item.dataset.source)['uri'])"
        )
    if Path(data_file).name not in files:
        raise NotYet(
            f"data file {data_file!r}: run {run.info.run_name} read {sorted(files)}, from its datasets' source"
        )
    return (
        f"the log's first answer came from version {version}, logged by run {run.info.run_name}, "
        f"trained on {Path(data_file).name}: the log records the version, not the alias, because the alias may "
        "have moved since the answer was given."
    )


def notebook_10(model_name: str, served_log: Path) -> tuple[Exercise, Exercise, Exercise]:
    """Notebook 10's exercises, against the learner's registry, tracking store and June prediction log."""
    return (
        Exercise(
            "10",
            1,
            partial(_same_training_rows, model_name),
            [
                "The champion's training digest: the dataset input whose tag `mlflow.data.context` is 'training'.",
                "For every `client.search_model_versions(f\"name = '{MODEL_NAME}'\")`, the same lookup on `v.run_id` "
                "(some runs logged no dataset: answer None for them).",
                "Answer the version numbers whose training digest equals the champion's.",
            ],
        ),
        Exercise(
            "10",
            2,
            partial(_owner_card, model_name),
            [
                "`client.set_model_version_tag(MODEL_NAME, number, cards.OWNER_TAG, 'someone@example.org')`.",
                "`cards.model_card(MODEL_NAME, number, client)` while the tag is set; then "
                "`client.delete_model_version_tag(MODEL_NAME, number, cards.OWNER_TAG)`; answer the card's text.",
            ],
        ),
        Exercise(
            "10",
            3,
            partial(_answer_to_data, model_name, served_log),
            [
                "`json.loads(served_log.read_text().splitlines()[0])` is the first row; it names 'model', 'version'.",
                "`client.get_model_version(model, version).run_id`, then `client.get_run(...)`; the datasets' "
                "`json.loads(item.dataset.source)['uri']` is the file.",
            ],
        ),
    )
