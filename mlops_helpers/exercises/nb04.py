"""Notebook 04's exercises, checked against the learner's servers' logs, prediction log, metrics and registry."""

from __future__ import annotations

import math
import re
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

from mlops_helpers.exercises import Exercise, NotYet, expect_close, expect_keys, expect_type

STRICT_NAME = "strict-service"  # the name exercise 1 starts the strict service under: its log is logs/<name>.log
# What each of the lesson's bad requests needs from a strict request model (the fix named when it still passes).
FIXES = {
    "number as text": "strict=True stops pydantic from converting text to a number",
    "misspelt column": "extra='forbid' refuses a column the model does not know",
    "empty batch": "Field(min_length=1) on `records` refuses an empty list",
}


def _status(value: Any, what: str) -> int:
    if hasattr(value, "status_code"):
        raise NotYet(f"{what} is a whole response: answer its .status_code")
    return expect_type(value, int, what)


# --- 1. a strict minimal service


def _last_start(log: Path) -> str:
    """The log of the last start of a uvicorn server (the log file is appended to by every start)."""
    text = log.read_text(errors="replace")
    return text.rsplit("Started server process", 1)[-1]


def _counts(codes) -> str:
    return ", ".join(f"{n} x {code}" for code, n in sorted(Counter(codes).items()))


def _strict_service(bad_requests: dict, log_dir: Path, answer: Any) -> str:
    expect_keys(answer, list(bad_requests), "the status codes by bad request")
    codes = {what: _status(answer[what], f"the status code of {what!r}") for what in bad_requests}
    for what, fix in FIXES.items():
        if what in codes and codes[what] == 200:
            raise NotYet(f"{what!r} still gets 200: {fix}")
    log = log_dir / f"{STRICT_NAME}.log"
    if not log.exists():
        raise NotYet(f"no log {log.name} in the workspace's logs: start your strict service with "
                     f"name={STRICT_NAME!r}, send it bad_requests, and answer what it said")  # fmt: skip
    session = _last_start(log)
    said = [int(code) for code in re.findall(r'"POST /predict HTTP/1\.\d" (\d{3})', session)][-len(bad_requests) :]
    if Counter(said) != Counter(codes.values()):
        raise NotYet(f"your answer has {_counts(codes.values())}, but the last run of {STRICT_NAME} answered "
                     f"{_counts(said) or 'no POST /predict'} (see {log.name}): answer what it said")  # fmt: skip
    for what, fix in FIXES.items():
        if what in codes and codes[what] != 422:
            raise NotYet(f"{what!r} gets {codes[what]}, not 422: {fix}")
    failing = [what for what, code in codes.items() if code >= 500]
    if not failing:
        return "every bad request is refused with 422: you fixed more than asked, as the production service does"
    errors = sorted(set(re.findall(r"^(\w*Error: .+)$", session, flags=re.M)))
    why = " and ".join(repr(e.rstrip(".")) for e in errors) if errors else "(no error line found)"
    return (f"{' and '.join(failing)} still get 500; the log says why: {why}. FastAPI's 422 echoes the input, and "
            "NaN is not JSON; 1e308 is a valid double that the model's float32 trees cannot take")  # fmt: skip


# --- 2. the mean prediction, two ways


def _metric_sum(exposition: str, name: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    return sum(s.value for family in text_string_to_metric_families(exposition) for s in family.samples
               if s.name == name)  # fmt: skip


def _mean_two_ways(prediction_log: Path, exposition: str, answer: Any) -> str:
    from mlops_helpers.serving import predlog

    expect_keys(answer, ["log", "metrics"], "the two means")
    total, count = _metric_sum(exposition, "prediction_value_sum"), _metric_sum(exposition, "prediction_value_count")
    log = predlog.log_frame(prediction_log)
    if not count or len(log) < count:
        raise NotYet(f"the metrics text counted {count:g} predictions and {Path(prediction_log).name} holds "
                     f"{len(log)} rows: run the lesson's production service cells")  # fmt: skip
    # The log only grows (the latency test adds rows later): its first rows are the ones the metrics text counted.
    rows = log["prediction"].iloc[: int(count)]
    from_log, from_metrics, everything = float(rows.mean()), total / count, float(log["prediction"].mean())
    for key, value in (("log", answer["log"]), ("metrics", answer["metrics"])):
        if not hasattr(value, "__float__") or isinstance(value, str):
            continue  # expect_close names the type
        if math.isclose(float(value), total, rel_tol=1e-9):
            raise NotYet(f"answer[{key!r}] is the sum of the predictions ({total:.1f}): divide it by "
                         f"prediction_value_count ({count:g})")  # fmt: skip
        if key == "log" and math.isclose(float(value), float(rows.median()), rel_tol=1e-9):
            raise NotYet("answer['log'] is the median prediction: the metrics give a mean, so take the mean")
        if key == "log" and len(log) > count and math.isclose(float(value), everything, rel_tol=1e-9):
            raise NotYet(f"that is the mean of all {len(log)} rows the log holds now; the metrics text was read when "
                         f"it had {count:g}: compare the same rows (the `log` frame read then)")  # fmt: skip
    expect_close(answer["log"], from_log, "the mean from the log", 1e-6 * max(1.0, abs(from_log)))
    expect_close(answer["metrics"], from_metrics, "the mean from the metrics", 1e-6 * max(1.0, abs(from_metrics)))
    return (f"both {from_log:.2f}: the log's {count:g} rows are the {count:g} predictions the histogram counted "
            "(refused requests reach neither): the log keeps every row, the metrics a sum and buckets")  # fmt: skip


# --- 3. a version URI


def _version_uri(model_name: str, start_error: Any, pinned_health: Any) -> str:
    from mlflow import MlflowClient

    if isinstance(start_error, BaseException):
        start_error = f"{type(start_error).__name__}: {start_error}"
    start_error = expect_type(start_error, str, "the start-up error")
    versions = {str(mv.version) for mv in MlflowClient().search_model_versions(f"name = '{model_name}'")}
    version = max(versions, key=int, default="1")
    try:  # the unchanged service's first line, on a version URI: Python's own error is the reference
        _name, _alias = f"models:/{model_name}/{version}".removeprefix("models:/").split("@")
        reference = ""
    except ValueError as error:
        reference = str(error)
    if reference not in start_error:
        raise NotYet(f"the unchanged service stops with a ValueError at its first line ({reference!r}); your "
                     "text does not say so: find the line starting with ValueError in the ServerError")  # fmt: skip
    health = expect_keys(pinned_health, ["model", "alias", "version"], "the /health of your changed service")
    if health["model"] != model_name:
        raise NotYet(f"your service serves {health['model']!r}, not {model_name!r}")
    if health["alias"] is not None:
        raise NotYet(f"your service still resolved the alias {health['alias']!r}: start it with "
                     f"MODEL_URI=models:/{model_name}/<version>; a version URI has no alias (None)")  # fmt: skip
    if str(health["version"]) not in versions:
        raise NotYet(f"{model_name} has no version {health['version']!r}; it has {sorted(versions, key=int)}")
    return (f"'{model_name}/<version>'.split('@') gives one part, not two: the unchanged service dies before it "
            f"answers. Yours serves version {health['version']} pinned: no registry lookup, and an alias that "
            "moves later does not change it")  # fmt: skip


def notebook_04(
    model_name: str, bad_requests: dict, prediction_log: str | Path, exposition: str, log_dir: str | Path
) -> tuple[Exercise, Exercise, Exercise]:
    """Notebook 04's exercises: the lesson's bad requests, the production service's prediction log and metrics
    text, and the workspace's server logs (``ws.root / "logs"``)."""
    return (
        Exercise("04", 1, partial(_strict_service, dict(bad_requests), Path(log_dir)), [
            "Write a changed copy of `service_file` with `str.replace`, and start it with name='strict-service'.",
            "`create_model('Record', __config__=ConfigDict(extra='forbid', strict=True, allow_inf_nan=False), ...)`.",
            "`records=(list[Record], Field(min_length=1))`; answer `{what: post(url, body).status_code ...}`.",
        ]),
        Exercise("04", 2, partial(_mean_two_ways, Path(prediction_log), exposition), [
            "`log['prediction']` holds every predicted row.",
            "`sample(exposition, 'prediction_value_sum') / sample(exposition, 'prediction_value_count')`.",
        ]),
        Exercise("04", 3, partial(_version_uri, model_name), [
            "Start `minimal_command` with `env={'MODEL_URI': f'models:/{MODEL_NAME}/{champion.version}'}` in a try.",
            "`except processes.ServerError as failed:` its text ends with the log's last lines: the ValueError.",
            "In a copy of the service: `split('@')` only when the URI has an '@', else the version is after the '/'.",
        ]),
    )  # fmt: skip
