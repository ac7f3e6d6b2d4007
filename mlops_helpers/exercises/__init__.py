"""Exercises a learner can check: ``q1.check(answer)``, ``q1.hint()``, ``q1.solution()`` (every notebook).

In the spirit of Kaggle Learn's checks: :meth:`Exercise.check` says *what* is wrong in an answer (no answer yet,
the wrong type, a missing key, off by how much), never raises on a wrong or empty answer, and returns a :class:`Verdict`
that is true only when the answer is right, so a solution cell can ``assert q1.check(answer)``. The reference an
answer is checked against is computed from the learner's own state (their data frames, their tracking store, their
registry), never a number written here.

A notebook makes its exercises with one call, e.g. ``q1, q2, q3 = exercises.notebook_01(EXPERIMENT_NAME, SWEEP_ID)``.
Each notebook's checks live in their own module, ``nbNN.py`` beside this file, which defines ``notebook_NN``; this
package finds it on first use, so adding a notebook's checks touches no other file.
:meth:`Exercise.solution` prints the source of the notebook's solution cell for that exercise (the cell tagged
``solution`` whose first line is ``# N.``), so a solution is written once, where CI executes it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
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


def as_list(answer: Any, what: str) -> list:
    """A list, tuple, set, pandas Series or numpy array, as a list; NotYet for anything else."""
    import numpy as np
    import pandas as pd

    return list(expect_type(answer, (list, tuple, set, pd.Series, np.ndarray), what))


def __getattr__(name: str):
    """``exercises.notebook_NN``: the function of that name in the module ``nbNN`` (imported on first use)."""
    found = re.fullmatch(r"notebook_(\d\d)", name)
    if found is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    try:
        module = importlib.import_module(f"{__name__}.nb{found[1]}")
    except ModuleNotFoundError as missing:
        if missing.name != f"{__name__}.nb{found[1]}":
            raise
        raise AttributeError(f"notebook {found[1]} has no exercise checks ({__name__}/nb{found[1]}.py)") from None
    return getattr(module, name)
