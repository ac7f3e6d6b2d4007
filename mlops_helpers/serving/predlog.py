"""The prediction log: one JSON line per predicted row, the monitoring input of notebooks 06, 07, 09 and 10.

Each line holds the request id, the row's place in the request, the UTC time, the model name and version, the
variant and whether its prediction was returned (``served``; false in shadow mode), the request key, the features and
the prediction. A request's rows are appended in one write before the answer is sent (:mod:`mlops_helpers.jsonl`):
a killed service loses at most the request in flight.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_helpers.jsonl import AppendOnlyFile, read_jsonl

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd


class PredictionLog(AppendOnlyFile):
    """The service's prediction log (an append-only JSON Lines file)."""


def log_rows(
    ref, variant: str, rows: list[dict], predictions: list[float], request_id: str, key: str | None, at: str, served
) -> list[dict[str, Any]]:
    """The log lines of one request answered (or shadowed) by ``variant`` of the model ``ref`` (a ``ModelRef``)."""
    return [
        {
            "request_id": request_id,
            "row": i,
            "time": at,
            "model": ref.name,
            "version": ref.version,
            "variant": variant,
            "served": served,
            "key": key,
            "features": row,
            "prediction": value,
        }
        for i, (row, value) in enumerate(zip(rows, predictions, strict=True))
    ]


def log_frame(path: str | Path) -> pd.DataFrame:
    """A prediction log as a DataFrame: one column per feature, plus request id, time, model, version, prediction."""
    import pandas as pd

    rows = read_jsonl(path)
    if not rows:
        return pd.DataFrame(columns=["request_id", "time", "model", "version", "prediction"])
    meta = pd.DataFrame([{k: v for k, v in r.items() if k != "features"} for r in rows])
    features = pd.DataFrame([r.get("features", {}) for r in rows])
    frame = pd.concat([meta, features], axis=1)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def default_log_path(model_name: str) -> Path:
    """``<workspace>/predictions/<model name>.jsonl``."""
    from mlops_helpers.workspace import default_root

    return default_root() / "predictions" / f"{model_name}.jsonl"
