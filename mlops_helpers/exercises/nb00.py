"""Notebook 00's exercises, checked against the learner's `train` and `production` frames."""

from __future__ import annotations

import numbers
import re
from functools import partial
from typing import Any

from mlops_helpers.exercises import Exercise, NotYet, expect_close, expect_keys, expect_type

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
