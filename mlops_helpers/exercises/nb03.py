"""Notebook 03's exercises, checked against the learner's model registry."""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from mlops_helpers.exercises import Exercise, NotYet, as_list, expect_same_set, expect_type

# --- Notebook 03: the registry, checked against the learner's model registry


def _family(mv) -> str | None:
    """The version's family: its own tag, else its run's (the course's runs are tagged with their family)."""
    import mlflow

    return mv.tags.get("family") or mlflow.get_run(mv.run_id).data.tags.get("family")


def _gate(model_name: str, version: Any) -> str:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    version = str(expect_type(version, (str, int), "the version you gated"))
    mv = client.get_model_version(model_name, version)
    family = _family(mv)
    if family != "ridge":
        raise NotYet(f"version {version} is a {family} model: register the best ridge run and gate that version "
                     "(the lesson's versions need no gate of yours)")  # fmt: skip
    status = mv.tags.get("validation_status")
    champion = client.get_model_version_by_alias(model_name, "champion")
    if status is None:
        raise NotYet(f"version {version} has no 'validation_status' tag: promote_if_better must set it")

    def rmse(v) -> float:
        return mlflow.get_run(v.run_id).data.metrics.get("val_rmse", math.inf)

    mine = rmse(mv)
    if str(champion.version) == version:  # the store gives versions as int, the learner's may be text
        if status != "passed":
            raise NotYet(f"version {version} is the champion but tagged {status!r}: a champion has passed")
        passed = [v for v in client.search_model_versions(f"name = '{model_name}'")
                  if str(v.version) != version and v.tags.get("validation_status") == "passed"]  # fmt: skip
        better = min(passed, key=rmse, default=None)
        if better is not None and rmse(better) < mine:
            raise NotYet(f"version {version} ({mine:.2f}) is champion, but version {better.version} scores "
                         f"{rmse(better):.2f}: your gate promoted the worse model")  # fmt: skip
        return f"version {version} ({mine:.2f}) passed the gate and is the champion"
    theirs = rmse(champion)
    if mine < theirs:
        raise NotYet(f"version {version} scores {mine:.2f} against the champion's {theirs:.2f}: it should be champion")
    if status != "failed":
        raise NotYet(f"version {version} is worse ({mine:.2f} vs {theirs:.2f}) but tagged {status!r}, not 'failed'")
    return f"version {version} ({mine:.2f}) was refused: the champion ({theirs:.2f}) stays"


def _failed_versions(model_name: str, answer: Any) -> str:
    from mlflow import MlflowClient

    answer = [getattr(a, "version", a) for a in as_list(answer, "the versions")]  # ModelVersions as search gives
    versions = MlflowClient().search_model_versions(f"name = '{model_name}'")
    failed = [mv.version for mv in versions if mv.tags.get("validation_status") == "failed"]
    if not failed:
        raise NotYet("no version is tagged validation_status 'failed' yet: gate the ridge of exercise 1 first")
    expect_same_set(answer, failed, "the versions whose validation failed")
    return f"{len(failed)} failed version(s)"


def _audit_table(model_name: str, answer: Any) -> str:
    import mlflow
    import pandas as pd
    from mlflow import MlflowClient

    table = expect_type(answer, pd.DataFrame, "the audit table")
    missing = [c for c in ("run", "family", "validation data") if c not in table.columns]
    if missing:
        raise NotYet(f"the audit table lacks the column(s) {missing}; it has {list(table.columns)}")
    registered = {}  # run name -> {(family, validation digest)} of the versions logged by runs of that name
    for mv in MlflowClient().search_model_versions(f"name = '{model_name}'"):
        run = mlflow.get_run(mv.run_id)
        digests = [d.dataset.digest for d in run.inputs.dataset_inputs if d.tags[0].value == "validation"]
        family = mv.tags.get("family") or run.data.tags.get("family")  # the version's tag, else its run's
        registered.setdefault(run.info.run_name, set()).add((family, next(iter(digests), None)))
    for row in table.to_dict("records"):
        if row["run"] not in registered:
            raise NotYet(f"no registered version comes from a run named {row['run']!r}")
        if (row["family"], row["validation data"]) not in registered[row["run"]]:
            family, digest = sorted(registered[row["run"]], key=str)[0]
            raise NotYet(f"{row['run']}: the registry says family {family!r}, validation data {digest!r}")
    if table["run"].nunique() < 3:
        raise NotYet(f"{table['run'].nunique()} distinct run(s): one row per version registered here "
                     "(versions 1 and 2 above, and the ridge of exercise 1)")  # fmt: skip
    return f"{len(table)} versions traced to their run, family and validation data"


def notebook_03(model_name: str) -> tuple[Exercise, Exercise, Exercise]:
    """Notebook 03's exercises, checked against the learner's model registry."""
    return (
        Exercise("03", 1, partial(_gate, model_name), [
            "Score both with `validation_rmse(f'models:/{MODEL_NAME}/{version}')` and `...@champion`.",
            "Tag with `client.set_model_version_tag`; move the alias only if it passed. Answer the version.",
        ]),
        Exercise("03", 2, partial(_failed_versions, model_name), [
            "`client.search_model_versions` takes a filter string, like `search_runs`.",
            "`f\"name = '{MODEL_NAME}' and tags.validation_status = 'failed'\"`; answer the version numbers.",
        ]),
        Exercise("03", 3, partial(_audit_table, model_name), [
            "`mlflow.get_run(mv.run_id).inputs.dataset_inputs` holds the datasets and their context tags.",
            "One dict per version: `{'run': ..., 'family': ..., 'validation data': digest}`, then `pd.DataFrame`.",
        ]),
    )  # fmt: skip
