"""Exercises a learner can check: ``q1.check(answer)``, ``q1.hint()``, ``q1.solution()`` (notebooks 00-03).

In the spirit of Kaggle Learn's checks: :meth:`Exercise.check` says *what* is wrong in an answer (no answer yet,
the wrong type, a missing key, off by how much), never raises on a wrong or empty answer, and returns a :class:`Verdict`
that is true only when the answer is right, so a solution cell can ``assert q1.check(answer)``. The reference an
answer is checked against is computed from the learner's own state (their data frames, their tracking store, their
registry), never a number written here.

A notebook makes its exercises with one call, e.g. ``q1, q2, q3 = exercises.notebook_01(EXPERIMENT_NAME, SWEEP_ID)``.
:meth:`Exercise.solution` prints the source of the notebook's solution cell for that exercise (the cell tagged
``solution`` whose first line is ``# N.``), so a solution is written once, where CI executes it.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from mlops_helpers import REPO_ROOT

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
SOLUTION_TAG = "solution"


class NotYet(Exception):
    """Raised by a checker to say what is wrong with the answer; :meth:`Exercise.check` turns it into a verdict."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one check: true only when the answer is right; its text says why not."""

    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def __repr__(self) -> str:
        return ("Correct: " if self.passed else "Not yet: ") + self.message


@dataclass
class Exercise:
    """One exercise: a checker, tiered hints, and where its solution lives."""

    notebook: str  # e.g. "01"
    number: int
    checker: Callable[..., str]  # returns what was right, raises NotYet with what is wrong
    hints: list[str] = field(default_factory=list)
    _hints_shown: int = 0

    def check(self, *answers: Any) -> Verdict:
        """Check an answer; an empty one (``...`` or ``None``) is "not yet", never an exception."""
        if not answers or any(a is ... or a is None for a in answers):
            empty = f"no answer: replace `...` in the answer cell of exercise {self.number}, then run it again"
            return Verdict(False, empty)
        try:
            return Verdict(True, self.checker(*answers))
        except NotYet as wrong:
            return Verdict(False, str(wrong))
        except Exception as error:  # an answer the checker could not even read: say so, do not raise
            first_line = (str(error).strip().splitlines() or [""])[0][:200]
            return Verdict(False, f"your answer could not be checked: {type(error).__name__}: {first_line}")

    def hint(self, level: int | None = None) -> None:
        """Print the next hint (or hint ``level``, from 1): each one gives a little more away."""
        if not self.hints:
            print("No hint for this one: read the exercise again, then `.solution()`.")
            return
        if level is None:
            self._hints_shown = min(self._hints_shown + 1, len(self.hints))
            level = self._hints_shown
        level = max(1, min(level, len(self.hints)))
        print(f"Hint {level}/{len(self.hints)}: {self.hints[level - 1]}")

    def solution(self) -> None:
        """Print the solution's code, read from the notebook's solution cell for this exercise."""
        print(solution_source(self.notebook, self.number))


def solution_source(notebook: str, number: int, notebook_dir: Path = NOTEBOOK_DIR) -> str:
    """The source of the cell tagged ``solution`` in notebook ``NN_*`` whose comment names exercise ``number``."""
    import nbformat

    path = next(notebook_dir.glob(f"{notebook}_*.ipynb"))
    for cell in nbformat.read(path, as_version=4).cells:
        if SOLUTION_TAG in cell.metadata.get("tags", []) and re.search(
            rf"^# (\d\.(, )?)*{number}\.", cell.source, flags=re.M
        ):
            return cell.source
    raise LookupError(f"{path.name} has no cell tagged {SOLUTION_TAG!r} for exercise {number}")


# --- Small readable checks: each raises NotYet with what is wrong, or returns the value it checked.


def expect_type(value: Any, kinds: type | tuple[type, ...], what: str) -> Any:
    """``value`` is one of ``kinds``, or NotYet naming the type it is."""
    if not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in (kinds if isinstance(kinds, tuple) else (kinds,)))
        article = "an" if names[0] in "aeiou" else "a"
        raise NotYet(f"{what} should be {article} {names}, not a {type(value).__name__} ({value!r:.60})")
    return value


def expect_keys(mapping: Any, keys: Iterable[str], what: str) -> Any:
    """``mapping`` (a dict or a pandas Series) has every key, or NotYet naming the missing ones."""
    if not hasattr(mapping, "keys"):
        expect_type(mapping, dict, what)
    missing = [k for k in keys if k not in mapping.keys()]  # noqa: SIM118  (a Series' `in` looks at its values)
    if missing:
        raise NotYet(f"{what} lacks the key(s) {missing}; it has {sorted(map(str, mapping.keys()))}")
    return mapping


def expect_close(value: Any, expected: float, what: str, tolerance: float) -> float:
    """``value`` is a number within ``tolerance`` of ``expected``, or NotYet saying by how much it is off."""
    if not hasattr(value, "__float__") or isinstance(value, str):
        expect_type(value, float, what)
    value = float(value)
    if math.isnan(value) or abs(value - expected) > tolerance:
        direction = "high" if value > expected else "low"
        raise NotYet(f"{what} is {value:.4g}: too {direction} by {abs(value - expected):.3g} (tolerance {tolerance:g})")
    return value


def expect_same_set(given: Iterable[Any], expected: Iterable[Any], what: str) -> set:
    """The same elements (compared as text), or NotYet naming the missing and the extra ones."""
    given, expected = {str(g) for g in given}, {str(e) for e in expected}
    missing, extra = sorted(expected - given), sorted(given - expected)
    if missing or extra:
        parts = [f"missing {missing}" if missing else "", f"should not contain {extra}" if extra else ""]
        raise NotYet(f"{what}: " + "; ".join(p for p in parts if p))
    return given


def _as_list(answer: Any, what: str) -> list:
    """A list, tuple, set, pandas Series or numpy array, as a list; NotYet for anything else."""
    import numpy as np
    import pandas as pd

    return list(expect_type(answer, (list, tuple, set, pd.Series, np.ndarray), what))


# --- Notebook 00: the data, checked against the learner's `train` and `production` frames


def _peak_hour(train, answer: Any) -> str:
    if isinstance(answer, bool) or not isinstance(answer, numbers.Integral):  # numpy's int64 (idxmax) is welcome
        expect_type(answer, int, "the peak hour")
    answer = int(answer)
    if not 0 <= answer <= 23:
        raise NotYet(f"the peak hour is an hour of the day, 0-23, not {answer}")
    means = train[train["workingday"] == 0].groupby("hr")["bikers"].mean()
    if answer != int(means.idxmax()):
        raise NotYet(
            f"hour {answer} has a mean of {means[answer]:.1f} bikers on non-working training days; another hour "
            f"has {means.max():.1f} (only non-working days, only the training window)"
        )
    return f"hour {answer}, {means[answer]:.1f} bikers on average on non-working days of the training window"


def _rain_share(train, production, answer: Any) -> str:
    expect_keys(answer, ["train", "production"], "the shares")
    for name, frame in (("train", train), ("production", production)):
        if float(answer[name]) > 1:
            raise NotYet(
                f"the {name} share is {float(answer[name]):g}: a share is between 0 and 1, not a percentage or a count"
            )
        expect_close(answer[name], (frame["weathersit"] == "light rain/snow").mean(), f"the {name} share", 0.001)
    return "the shares of light rain/snow hours match the data"


def _weather_digest(answer: Any) -> str:
    from mlops_helpers import data

    if isinstance(answer, bytes):
        raise NotYet("that is .digest(), bytes: call .hexdigest() for the 64-character text")
    expect_type(answer, str, "the digest")
    answer = answer.lower()
    if not re.fullmatch(r"[0-9a-f]{64}", answer):
        raise NotYet(f"a SHA-256 hex digest is 64 hex characters; this has {len(answer)}: call .hexdigest()")
    if answer != data.expected_checksums()[data.WEATHER_FILE]:
        raise NotYet("the digest is not the one in data/checksums: did you hash every block of weather.csv?")
    return f"{data.WEATHER_FILE} matches its recorded checksum"


def notebook_00(train, production) -> tuple[Exercise, Exercise, Exercise]:
    """Notebook 00's exercises, checked against the learner's ``train`` and ``production`` frames."""
    return (
        Exercise("00", 1, partial(_peak_hour, train), [
            "Keep `train[train['workingday'] == 0]`, then group by `hr`.",
            "`.groupby('hr')['bikers'].mean().idxmax()`, as an `int`.",
        ]),
        Exercise("00", 2, partial(_rain_share, train, production), [
            "`(frame['weathersit'] == 'light rain/snow').mean()` is a share.",
            "Answer a dict: `{'train': ..., 'production': ...}`.",
        ]),
        Exercise("00", 3, _weather_digest, [
            "`hashlib.sha256()`, then `.update(block)` for each block you read.",
            "`iter(lambda: handle.read(1 << 16), b'')` yields the blocks.",
        ]),
    )  # fmt: skip


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
    answer = _as_list(answer, "the run names")
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


# --- Notebook 03: the registry, checked against the learner's model registry


def _gate(model_name: str, version: Any) -> str:
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient()
    version = str(expect_type(version, (str, int), "the version you gated"))
    mv = client.get_model_version(model_name, version)
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

    answer = [getattr(a, "version", a) for a in _as_list(answer, "the versions")]  # ModelVersions as search gives
    versions = MlflowClient().search_model_versions(f"name = '{model_name}'")
    failed = [mv.version for mv in versions if mv.tags.get("validation_status") == "failed"]
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
        registered.setdefault(run.info.run_name, set()).add((mv.tags.get("family"), next(iter(digests), None)))
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
