"""Notebook 05's exercises, checked against the learner's tracking store, registry, audit trail and batch file."""

from __future__ import annotations

import numbers
from functools import partial
from pathlib import Path
from typing import Any

from mlops_helpers.exercises import Exercise, NotYet, expect_keys, expect_same_set, expect_type

# --- Notebook 05: the pipeline, checked against the learner's runs, registry and batch

#: Exercise 3's batch, as the exercise words it: January to July (a window's end is exclusive).
JULY_WINDOW = "2011-01-01:2011-08-01"


def _count(value: Any, what: str) -> int:
    """A whole number (numpy's too, as ``.sum()`` gives it), or NotYet."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        expect_type(value, int, what)
    return int(value)


def _flag(value: Any, what: str) -> bool:
    """True or False (numpy's too, as ``.all()`` gives it), or NotYet."""
    import numpy as np

    if not isinstance(value, bool | np.bool_):
        expect_type(value, bool, what)
    return bool(value)


def _margin(run_id: str, answer: Any) -> str:
    import mlflow

    expect_keys(answer, ["margin", "passes 60 %"], "your answer")
    margin = answer["margin"]
    if not isinstance(margin, numbers.Real) or isinstance(margin, bool):
        expect_type(margin, float, "the margin")
    margin = float(margin)
    metrics = mlflow.get_run(run_id).data.metrics  # stage 3 logged both RMSEs on the held-out days, on your run
    candidate, winter = metrics["holdout_rmse"], metrics["champion_holdout_rmse"]
    right = 1 - candidate / winter
    if abs(margin - right) > 0.001:
        if abs(margin) < 0.01:
            raise NotYet("a margin of about 0: you compared the May model with itself (`@champion` is the May model "
                         "now); load the winter model by its version, `models:/{MODEL_NAME}/{winter}`")  # fmt: skip
        if abs(margin - 100 * right) < 0.1:
            raise NotYet(f"{margin:g} is a percentage: give the margin as a share, {margin / 100:.3f}, as "
                         "`MIN_IMPROVEMENT` is")  # fmt: skip
        if abs(margin - candidate / winter) < 0.001:
            raise NotYet(f"{margin:.3f} is the May model's RMSE as a share of the winter's; the margin is 1 minus it")
        if abs(margin - (winter / candidate - 1)) < 0.001:
            raise NotYet(f"{margin:.3f} is measured against the May model's RMSE; a gate measures the improvement "
                         "against the champion's: 1 - candidate / champion")  # fmt: skip
        direction = "high" if margin > right else "low"
        raise NotYet(f"a margin of {margin:.3f} is too {direction} by {abs(margin - right):.3f}: on the held-out days "
                     f"the May model's RMSE is {candidate:.2f}, the winter champion's {winter:.2f}")  # fmt: skip
    passes = _flag(answer["passes 60 %"], "'passes 60 %'")
    right_passes = candidate <= winter * (1 - 0.6)
    if passes != right_passes:
        limit = winter * (1 - 0.6)
        raise NotYet(f"'passes 60 %' is {passes}: a 60 % gate lets through an RMSE up to {limit:.2f} "
                     f"(0.4 x {winter:.2f}), and the May model's is {candidate:.2f}")  # fmt: skip
    verdict = "would let it through" if right_passes else "would refuse it"
    return (
        f"the May model is {right:.1%} better than the winter champion ({candidate:.2f} against {winter:.2f}); "
        f"a 60 % gate {verdict}"
    )


def _wind_faults(batch_path: str | Path, answer: Any) -> str:
    import pandas as pd

    from mlops_helpers import data

    expect_keys(answer, ["by hand", "package"], "your answer")
    raw = pd.read_csv(batch_path)  # the January-May batch in your workspace, as the contract reads it
    right = int((raw["windspeed"] > 0.8).sum())
    for who in ("by hand", "package"):
        if isinstance(answer[who], pd.DataFrame):
            raise NotYet(f"'{who}' is a table: give the number of hours it reports for windspeed (its `rows`)")
        count = _count(answer[who], f"the count '{who}'")
        if count == right:
            continue
        year = data.load_bikes()
        if count == int((raw["windspeed"] >= 0.8).sum()):
            raise NotYet(f"'{who}': {count} counts hours at 0.8 too; a sensor fault is *above* 0.8 (0.8 is allowed)")
        if count == int((year["windspeed"] > 0.8).sum()):
            raise NotYet(f"'{who}': {count} is the whole year's count; the batch is January-May (`raw`)")
        if count == 0:
            raise NotYet(f"'{who}' finds no fault: did the rule reach the contract? `check_contract(raw, ranges=...)` "
                         "and a copy of `BIKES_CONTRACT` whose windspeed rule has the maximum 0.8")  # fmt: skip
        raise NotYet(f"'{who}' is {count}; the batch has {right} hour(s) with windspeed above 0.8")
    return (
        f"{right} hour(s) of January-May break the new rule, by your contract and by the package's: a rule you "
        "add to a contract is one more refusal the pipeline can give at stage 1"
    )


def _withdrawn(model_name: str, registry, version: str) -> None:
    """NotYet unless ``version`` was the challenger, the alias is removed and recorded, and the version deleted."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from mlops_helpers import names

    client = MlflowClient()
    events = [e for e in registry.events() if e.get("alias") == names.CHALLENGER]
    if not any(e["action"] == "set" and str(e["version"]) == version for e in events):
        raise NotYet(f"no audit event ever made version {version} the challenger: is it the version your July run "
                     "registered (`aliases()['challenger']` right after the run)?")  # fmt: skip
    now = registry.aliases()
    if now.get(names.CHALLENGER) is not None:
        raise NotYet(f"'challenger' still points at version {now[names.CHALLENGER]}: withdraw it with "
                     "`client.delete_registered_model_alias`")  # fmt: skip
    unrecorded = [f for f in registry.check().unrecorded if f.alias == names.CHALLENGER]
    if unrecorded:
        raise NotYet("the alias is gone but the audit trail still has it on a version: record the withdrawal "
                     "with your `record('delete', 'challenger', None, version, why, by)`")  # fmt: skip
    try:
        client.get_model_version(model_name, version)
    except MlflowException:
        pass
    else:
        raise NotYet(f"version {version} is still registered: `client.delete_model_version` removes it, so the "
                     "registry is as the notebook left it")  # fmt: skip


def _july_run(model_name: str, answer: Any) -> str:
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from mlops_helpers import data, names, pipeline
    from mlops_helpers.registry import Registry

    expect_keys(answer, ["run", "version", "passed", "refusal"], "your answer")
    run_id = str(expect_type(answer["run"], str, "'run' (the run id: `result.run_id`)"))
    version = str(expect_type(answer["version"], (str, int), "'version'"))
    try:
        run = mlflow.get_run(run_id)
    except MlflowException:
        raise NotYet(f"no run has the id {run_id!r}: give `run_pipeline(...).run_id`") from None
    tags = run.data.tags
    if names.DATA_TAG not in tags:
        raise NotYet(f"run {run.info.run_name!r} is not a pipeline run: run `pipeline.run_pipeline`")
    months = pd.read_csv(tags[names.DATA_TAG])["mnth"].unique()
    expected = data.source_batch(JULY_WINDOW)["mnth"].unique()
    expect_same_set(months, expected, "the months of the batch your run read (January-July; a window's end is "
                    "exclusive: it ends on 2011-08-01)")  # fmt: skip
    if tags.get(names.PROMOTED_TAG) == "True":
        raise NotYet("your run promoted the July model: stop at the challenger with `promote=False`")
    passed_gate = tags.get(pipeline.stage_tag("evaluate")) == "passed"
    passed = _flag(answer["passed"], "'passed'")
    metrics = run.data.metrics
    holdout, champion = metrics.get("holdout_rmse"), metrics.get("champion_holdout_rmse")
    if holdout is None or champion is None:
        code = tags.get(names.EXIT_CODE_TAG)
        raise NotYet(f"your run stopped before the gate compared two models (exit code {code}): it needs a batch "
                     "that passes the contract, and a champion in the registry")  # fmt: skip
    if passed != passed_gate:
        raise NotYet(f"'passed' is {passed}, but your run's gate says {passed_gate}: the July model's RMSE on the "
                     f"last two weeks of July is {holdout:.2f}, the champion's {champion:.2f}")  # fmt: skip
    # the refusal: the library's own words for an approval without a reason (no registry change: it refuses first)
    registry = Registry(model_name)
    refusal = str(answer["refusal"])  # the exception or its text
    without_reason = pipeline.approval_problem(registry, version, "someone", "")
    if refusal != without_reason:
        raise NotYet(f"the refusal should be the one for a missing reason ({without_reason!r}); yours: {refusal!r:.120}"
                     " -- approve the July challenger with `by=` but `why=''`")  # fmt: skip
    _withdrawn(model_name, registry, version)
    gate = "beat" if passed_gate else "did not beat"
    return (
        f"the July model ({holdout:.2f}) {gate} the champion ({champion:.2f}) by the margin the gate demands; "
        "without a reason no approval goes through, and the withdrawal is recorded before the version goes"
    )


def notebook_05(model_name: str, run_id: str, batch_path: str | Path) -> tuple[Exercise, Exercise, Exercise]:
    """Notebook 05's exercises: ``run_id`` is the run of the stages by hand, ``batch_path`` the January-May batch."""
    return (
        Exercise("05", 1, partial(_margin, run_id), [
            "The winter model by its version: `mlflow.pyfunc.load_model(f'models:/{MODEL_NAME}/{winter}')`; its RMSE "
            "on `X_hold`, `y_hold`.",
            "The margin is a share: `1 - candidate_rmse / winter_rmse`. A 60 % gate passes when "
            "`gate(candidate_rmse, winter_rmse, min_improvement=0.6)['passed'].all()`.",
            "Answer `{'margin': margin, 'passes 60 %': bool(...)}`.",
        ]),
        Exercise("05", 2, partial(_wind_faults, batch_path), [
            "By hand: `check_contract(raw, ranges={**RANGES, 'windspeed': (0, 0.8)})`.",
            "The package's: `replace(validation.BIKES_CONTRACT, rules=...)`, the windspeed rule replaced by "
            "`validation.ColumnRule('windspeed', 'float', 0, 0.8)`; `.validate(raw).to_frame()`.",
            "Answer the `rows` each report gives for windspeed: `{'by hand': ..., 'package': ...}`.",
        ]),
        Exercise("05", 3, partial(_july_run, model_name), [
            "Write the batch with `data.source_batch('2011-01-01:2011-08-01')` and run `pipeline.run_pipeline("
            "pipeline.PipelineConfig(path, promote=False, **gates))`; its metrics and its stage tags are on the run.",
            "`pipeline.approve(version, by=APPROVER, why='', registry=registry)` raises `ApprovalRefused`: keep it.",
            "Withdraw: `client.delete_registered_model_alias`, your `record('delete', ...)`, then "
            "`client.delete_model_version`. Answer `{'run': ..., 'version': ..., 'passed': ..., 'refusal': ...}`.",
        ]),
    )  # fmt: skip
