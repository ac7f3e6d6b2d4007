"""Assertions the exercise tests share (tests/test_exercises*.py): a check's verdict says "Not yet" naming the
mistake, or "Correct"."""

from __future__ import annotations

from mlops_helpers.exercises import Verdict


def not_yet(verdict: Verdict, *words: str) -> None:
    """The check refused the answer, and its message names every one of ``words``."""
    assert not verdict and repr(verdict).startswith("Not yet: "), verdict
    for word in words:
        assert word in verdict.message, (word, verdict.message)


def passes(verdict: Verdict) -> None:
    """The check accepted the answer."""
    assert verdict and repr(verdict).startswith("Correct: "), verdict
