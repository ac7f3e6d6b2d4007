"""Model cards: what a version is for, what it was trained on, how good it is and where it fails (notebook 10).

:func:`model_card` writes the card in markdown from what is recorded (registry tags, the run, the data, the audit
trail) and what can be computed now (the error month by month after training, the drift of the first months);
:func:`save_model_card` keeps it in the workspace and on the version's run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_helpers import data as course_data
from mlops_helpers.governance.reproducibility import TrainingData, parse_param, training_data

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from mlflow import MlflowClient

#: Registered-model (or version) tags the model card reads; the version's tag wins over the model's.
OWNER_TAG, INTENDED_USE_TAG, LIMITS_TAG = "owner", "card.intended_use", "card.limits"
#: The inputs the drift section checks (as notebook 07's monitoring job does): numeric, then categorical codes.
DRIFT_NUMERIC = ("temp", "atemp", "hum", "windspeed", "hr")
DRIFT_CATEGORICAL = ("weather", "workingday")


def monthly_rmse(model, frame: pd.DataFrame) -> pd.DataFrame:
    """The error of ``model`` (anything with ``predict``) on ``frame``, month by month.

    One row per calendar month present: ``hours``, mean ``rentals`` and ``rmse``.
    """
    import numpy as np
    import pandas as pd

    X, y = course_data.xy(frame)
    errors = pd.DataFrame({"y": y, "error": np.asarray(model.predict(X), dtype="float64") - y}, index=frame.index)
    grouped = errors.groupby(errors.index.to_period("M"))
    table = pd.DataFrame({
        "hours": grouped.size(),
        "rentals": grouped["y"].mean(),
        "rmse": grouped["error"].apply(lambda e: float(np.sqrt((e**2).mean()))),
    })  # fmt: skip
    table.index = table.index.strftime("%Y-%m")
    table.index.name = "month"
    return table


def _tag(name: str, mv, registered) -> str | None:
    return mv.tags.get(name) or registered.tags.get(name)


def markdown_table(frame: pd.DataFrame, digits: int = 2, index: bool = True) -> str:
    """A GitHub-flavoured markdown table (pandas' ``to_markdown`` needs tabulate, which the course does not pin)."""
    import numbers

    table = frame.reset_index() if index else frame

    def cell(value) -> str:
        if value is None or (isinstance(value, float) and value != value):
            return ""
        if isinstance(value, bool | str) or not isinstance(value, numbers.Number):
            return str(value).replace("|", "\\|")
        return str(value) if isinstance(value, numbers.Integral) else f"{value:.{digits}f}"

    numeric = [_is_numeric(table[c]) for c in table.columns]
    lines = ["| " + " | ".join(str(c) for c in table.columns) + " |"]
    lines.append("|" + "|".join("---:" if n else ":---" for n in numeric) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def _is_numeric(column) -> bool:
    import pandas as pd

    return pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)


@dataclass
class CardFacts:
    """What a model card says, gathered from the registry, the run, the data and the audit trail."""

    model_name: str
    mv: Any  # the ModelVersion
    registered: Any  # the RegisteredModel
    run: Any
    found: TrainingData
    family: str
    params: dict
    holdout_days: int
    events: list[dict]
    later_start: pd.Timestamp
    monthly: pd.DataFrame
    drift: pd.DataFrame | None
    drift_end: pd.Timestamp
    drift_months: int

    @property
    def version(self) -> str:
        return str(self.mv.version)

    @property
    def holdout_rmse(self) -> float | None:
        return self.run.data.metrics.get("holdout_rmse")


def model_card(
    model_name: str,
    version: str | int,
    client: MlflowClient | None = None,
    until: str = "2012-01-01",
    drift_months: int = 1,
) -> str:
    """A model card in markdown for a pipeline version (a number or an alias), generated from what is recorded.

    - header: version, aliases now, run, family and hyperparameters, logged model;
    - intended use and owners: the tags ``card.intended_use`` and ``owner`` (version tag, else registered-model tag)
      and the actors of the audit trail's moves of this version;
    - training data: the file, its SHA-256 checked against the run's record, the training and holdout rows and the
      MLflow digest (re-read with :func:`training_data`, so a changed file refuses to make a card);
    - metrics: the ones the run logged, and the error month by month after the batch, up to ``until``, computed now
      from ``data/Bikeshare.csv`` with the registered model;
    - drift: ``monitoring.drift_table`` of the training rows against the first ``drift_months`` months after the batch;
    - limits: the tag ``card.limits`` plus what the numbers show (where the error exceeds the holdout's);
    - the alias history of this version, from the audit trail.
    """
    facts = gather(model_name, version, client, until, drift_months)
    sections = (_header, _use_and_owners, _training_data, _metrics, _drift, _limits, _history, _lineage)
    return "\n".join(line for section in sections for line in section(facts))


def gather(
    model_name: str, version: str | int, client: MlflowClient | None, until: str, drift_months: int
) -> CardFacts:
    """Read what the card needs, and compute the monthly error and the drift after the batch."""
    import pandas as pd

    from mlops_helpers import monitoring
    from mlops_helpers.registry import Registry

    registry = Registry(model_name, client)
    mv = registry.version(version)
    v = str(mv.version)
    run = registry.client.get_run(mv.run_id)
    found = training_data(run)
    params = {k: parse_param(val) for k, val in run.data.params.items()}
    family, holdout_days = params.pop("family"), params.pop("holdout_days")
    events = [e for e in registry.events() if e["version"] == v or e["from"] == v]

    # the error after the batch, month by month, and the drift of the first months
    model = registry.load(v)
    batch_end = found.holdout.index.max()
    later_start = (batch_end + pd.Timedelta(hours=1)).to_period("M").to_timestamp()
    if later_start <= batch_end:
        later_start = (later_start + pd.offsets.MonthBegin(1)).normalize()
    bikes = course_data.load_bikes()
    later = bikes.loc[(bikes.index >= later_start) & (bikes.index < pd.Timestamp(until))]
    monthly = monthly_rmse(model, later) if len(later) else pd.DataFrame(columns=["hours", "rentals", "rmse"])
    holdout_rmse = run.data.metrics.get("holdout_rmse")
    if holdout_rmse and len(monthly):
        monthly["x holdout RMSE"] = monthly["rmse"] / holdout_rmse
    drift_end = later_start + pd.DateOffset(months=drift_months)
    drift_window = later.loc[later.index < drift_end]
    columns = list(DRIFT_NUMERIC + DRIFT_CATEGORICAL)
    drift = None
    if len(drift_window):
        drift = monitoring.drift_table(found.train[columns], drift_window[columns], numeric=list(DRIFT_NUMERIC),
                                       categorical=list(DRIFT_CATEGORICAL))  # fmt: skip
    registered = registry.client.get_registered_model(model_name)
    return CardFacts(model_name, mv, registered, run, found, family, params, holdout_days, events, later_start,
                     monthly, drift, drift_end, drift_months)  # fmt: skip


def _span(frame: pd.DataFrame) -> str:
    return f"{frame.index.min():%Y-%m-%d %H:%M} to {frame.index.max():%Y-%m-%d %H:%M}"


def _header(f: CardFacts) -> list[str]:
    import pandas as pd

    aliases = sorted(a for a, on in f.registered.aliases.items() if str(on) == f.version)
    return [
        f"# Model card: {f.model_name} version {f.version}",
        "",
        "| | |",
        "|---|---|",
        f"| registered model | `{f.model_name}` |",
        f"| version | {f.version} (aliases now: {', '.join('`@' + a + '`' for a in aliases) or 'none'}) |",
        f"| registered | {pd.Timestamp(f.mv.creation_timestamp, unit='ms'):%Y-%m-%d} |",
        f"| run | `{f.run.info.run_name}` (`{f.run.info.run_id}`) |",
        f"| model | {f.family} {json.dumps(f.params, sort_keys=True)} |",
        f"| logged model | `{f.mv.source}` |",
        "",
    ]


def _use_and_owners(f: CardFacts) -> list[str]:
    owner = _tag(OWNER_TAG, f.mv, f.registered)  # the version's owner wins over the registered model's
    actors = sorted({e["by"] for e in f.events})
    intended = _tag(INTENDED_USE_TAG, f.mv, f.registered) or "_Not recorded: set the tag `card.intended_use`._"
    return [
        "## Intended use",
        "",
        intended,
        "",
        "## Owners",
        "",
        f"- accountable: {owner or '_not recorded: set the tag `owner`_'}",
        f"- moved its aliases (audit trail): {', '.join(actors) if actors else 'nobody yet'}",
        "",
    ]


def _training_data(f: CardFacts) -> list[str]:
    found = f.found
    if found.recorded_sha256 == found.sha256:
        sha_state = "matches the SHA-256 the run recorded"
    else:
        sha_state = "no SHA-256 was recorded by the run; the MLflow digest below matches"
    return [
        "## Training data",
        "",
        f"- file `{found.path.name}`, sha256 `{found.sha256}`: {sha_state}",
        f"- training: {len(found.train):,} hours, {_span(found.train)}, MLflow digest `{found.digest}`",
        f"- holdout (evaluation): the last {f.holdout_days} days, {len(found.holdout):,} hours, {_span(found.holdout)}",
        "",
    ]


def _metrics(f: CardFacts) -> list[str]:
    import pandas as pd

    return [
        "## Metrics",
        "",
        "Logged by the run (rentals per hour):",
        "",
        markdown_table(pd.DataFrame({"value": f.run.data.metrics}).sort_index().rename_axis("metric")),
        "",
        f"The error after the batch, by month, computed now from `{course_data.BIKES_FILE}` with the registered model:",
        "",
        markdown_table(f.monthly) if len(f.monthly) else "_no later months in the data_",
        "",
    ]


def _drift(f: CardFacts) -> list[str]:
    import pandas as pd

    from mlops_helpers.monitoring import PSI_THRESHOLD

    if f.drift is None:
        return []
    drifted = f.drift[f.drift["drifted"]].sort_values("psi", ascending=False)
    names = ", ".join(f"`{c}` (PSI {p:.2f})" for c, p in drifted["psi"].items()) or "none"
    until = f" to {f.drift_end - pd.Timedelta(days=1):%Y-%m}" if f.drift_months > 1 else ""
    return [
        f"## Drift: training data vs {f.later_start:%Y-%m}{until}",
        "",
        f"{len(drifted)} of {len(f.drift)} inputs drifted (PSI >= {PSI_THRESHOLD}): {names}.",
        "",
        markdown_table(f.drift[["kind", "psi", "p_value", "drifted"]], digits=3),
        "",
    ]


def _limits(f: CardFacts) -> list[str]:
    span, monthly, holdout_rmse = _span(f.found.train), f.monthly, f.holdout_rmse
    limits = [
        f"- Trained on {span[:10]} to {span[-16:-6]}, one city (Washington DC), "
        "hourly weather as recorded: it has seen no later season and no other city."
    ]
    if holdout_rmse and len(monthly):
        worst = monthly["rmse"].idxmax()
        over = monthly.index[monthly["rmse"] > 1.25 * holdout_rmse].tolist()
        limits.append(
            f"- Its error after the batch peaks in {worst} at RMSE {monthly.loc[worst, 'rmse']:.1f}, "
            f"{monthly.loc[worst, 'x holdout RMSE']:.1f} x the holdout's {holdout_rmse:.1f}"
            + (f"; above 1.25 x in {', '.join(over)}: retrain before relying on it there." if over else ".")
        )
    if f.drift is not None and f.drift["drifted"].any():
        limits.append(f"- Inputs drift within {f.drift_months} month(s) of the batch: monitor them (notebooks 06-07).")
    stated = _tag(LIMITS_TAG, f.mv, f.registered)
    if stated:
        limits.append(f"- {stated}")
    return ["## Limits", "", *limits, ""]


def _history(f: CardFacts) -> list[str]:
    import pandas as pd

    from mlops_helpers.registry import EVENT_FIELDS

    if not f.events:
        return ["## Alias history (audit trail)", "", "_No recorded alias moves._"]
    history = pd.DataFrame(f.events)[list(EVENT_FIELDS)]
    return ["## Alias history (audit trail)", "", markdown_table(history, index=False)]


def _lineage(f: CardFacts) -> list[str]:
    return [
        "",
        "## Lineage",
        "",
        f"`{f.found.path.name}` -> dataset `{f.found.digest}` -> run `{f.run.info.run_name}` -> `{f.mv.source}` -> "
        f"`{f.model_name}` version {f.version}",
        "",
    ]


def save_model_card(
    model_name: str, version: str | int, card: str, client: MlflowClient | None = None, root: str | Path | None = None
) -> Path:
    """Write ``card`` to ``<workspace>/model_cards/<model>-v<N>.md``, log it on the version's run as
    ``model_card.md`` and tag the version ``model_card`` with that artifact's URI. Returns the file's path."""
    from mlops_helpers.registry import Registry
    from mlops_helpers.workspace import default_root

    registry = Registry(model_name, client)
    mv = registry.version(version)
    path = (Path(root) if root else default_root()) / "model_cards" / f"{model_name}-v{mv.version}.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(card)
    registry.client.log_text(mv.run_id, card, "model_card.md")
    registry.client.set_model_version_tag(model_name, mv.version, "model_card", f"runs:/{mv.run_id}/model_card.md")
    return path
