"""Notebook 01's exercises, checked against the runs in the learner's tracking store."""

from __future__ import annotations

from functools import partial
from typing import Any

from mlops_helpers.exercises import Exercise, NotYet, as_list, expect_keys, expect_same_set, expect_type

# --- Notebook 01: tracking, checked against the runs in the learner's tracking store


def _sweep_runs(experiment: str, sweep: str, extra: str = ""):
    import mlflow

    return mlflow.search_runs(
        experiment_names=[experiment],
        filter_string=f"tags.sweep = '{sweep}'" + (f" and {extra}" if extra else ""),
        order_by=["metrics.val_rmse ASC"],
    )


def _knn_positions(experiment: str, sweep: str, answer: Any) -> str:
    expect_keys(answer, ["knn-5", "knn-25"], "the positions")
    runs = _sweep_runs(experiment, sweep, "metrics.val_rmse >= 0")  # finished runs with a score
    board = runs.drop_duplicates("tags.mlflow.runName").reset_index(drop=True)  # a re-run cell logs a name twice
    names = list(board["tags.mlflow.runName"])
    for name in ("knn-5", "knn-25"):
        if name not in names:
            raise NotYet(f"no run named {name!r} in this sweep: log it with train_and_log(model, {name!r}, ...)")
        place = names.index(name) + 1
        if board.loc[place - 1, "tags.family"] != "knn":
            raise NotYet(f"the run {name!r} should have the family 'knn'")
        if answer[name] == place - 1:
            raise NotYet(f"{name} is number {place} of {len(names)}: places count from 1 (a DataFrame's index from 0)")
        if answer[name] != place:
            raise NotYet(f"{name} is number {place} of {len(names)} by val_rmse, not {answer[name]}")
    return f"knn-5 and knn-25 are numbers {answer['knn-5']} and {answer['knn-25']} of {len(names)}"


def _forests_under_50(experiment: str, sweep: str, answer: Any) -> str:
    answer = as_list(answer, "the run names")
    expected = _sweep_runs(experiment, sweep, "tags.family = 'random_forest' and metrics.val_rmse < 50")
    expect_same_set(answer, expected["tags.mlflow.runName"], "the random-forest runs under 50")
    return f"{len(expected)} random-forest run(s) with val_rmse under 50"


def _flights_auc(answer: Any) -> str:
    import mlflow

    auc = float(expect_type(answer, float, "the ROC AUC"))
    if not 0 <= auc <= 1:
        raise NotYet(f"{auc:g} is not a ROC AUC: that is between 0 and 1 (roc_auc_score of labels and scores)")
    runs = mlflow.search_runs(experiment_names=["flights-delays"], filter_string="metrics.val_auc > 0")
    if runs.empty:
        raise NotYet("no run with a metric 'val_auc' in the experiment 'flights-delays': log it there")
    if not (abs(runs["metrics.val_auc"] - auc) < 1e-9).any():
        raise NotYet(f"{auc:.4f} is not the val_auc of any run in 'flights-delays': log the AUC you computed")
    if auc <= 0.6:
        raise NotYet(f"an AUC of {auc:.3f} is close to chance: join the weather and use the hour of departure")
    return f"val_auc {auc:.3f} is logged in 'flights-delays'"


def notebook_01(experiment: str, sweep: str) -> tuple[Exercise, Exercise, Exercise]:
    """Notebook 01's exercises, checked against this sweep's runs in the learner's tracking store."""
    return (
        Exercise("01", 1, partial(_knn_positions, experiment, sweep), [
            "`make_pipeline(StandardScaler(), KNeighborsRegressor(n_neighbors=k))`, logged with `train_and_log`.",
            "skops names two types it does not trust: add them to `TRUSTED_TYPES`. Answer {'knn-5': place, ...}.",
        ]),
        Exercise("01", 2, partial(_forests_under_50, experiment, sweep), [
            "Filter strings combine with `and`: tags, metrics, params.",
            "`tags.sweep = '...' and tags.family = 'random_forest' and metrics.val_rmse < 50`; answer the run names.",
        ]),
        Exercise("01", 3, _flights_auc, [
            "`workspace.ensure_experiment(ws, 'flights-delays')`, then `mlflow.set_experiment` it (and back after).",
            "`roc_auc_score(y, clf.predict_proba(X)[:, 1])`, logged with `mlflow.log_metric('val_auc', auc)`.",
        ]),
    )  # fmt: skip
