"""Notebook 11's exercises, checked against the learner's DVC project (its Git history and cache), the registered
version's run, and the learner's feature tables."""

from __future__ import annotations

import json
import math
import numbers
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

from mlops_helpers.exercises import Exercise, NotYet, as_list, expect_keys, expect_same_set, expect_type

# The course's convention (notebook 05): `temp` is degrees Celsius divided by 41, a unit, not an answer. (UCI's hourly
# file documents (t + 8) / 47; 41 is its daily file's scale. The exercise only needs one scale, stated.)
TEMP_SCALE = 41
TAGS = ("v1", "v2", "v3")


def _git(project: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=project, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise NotYet(f"`git {' '.join(args)}` failed in {Path(project).name}: {done.stderr.strip()[:200]}")
    return done.stdout


def _stale_stages(project: Path, answer: Any) -> str:
    import yaml

    if hasattr(answer, "keys"):  # the dict that Repo.status() returns: its keys are the stages
        answer = list(answer.keys())
    answer = [str(a) for a in as_list(answer, "the stages out of date")]
    changed = "train.learning_rate"
    stages = yaml.safe_load((Path(project) / "dvc.yaml").read_text())["stages"]
    expected, keys_of = [], {}
    for name, stage in stages.items():
        keys = []
        for entry in stage.get("params", []):  # "key", or {"file.yaml": ["key", ...]}
            keys += [entry] if isinstance(entry, str) else [k for ks in entry.values() for k in ks]
        keys_of[name] = keys
        if any(changed == key or changed.startswith(f"{key}.") for key in keys):
            expected.append(name)
    unknown = sorted(set(answer) - set(stages))
    if unknown:
        raise NotYet(f"dvc.yaml has no stage {unknown}: its stages are {sorted(stages)}")
    for name in sorted(set(answer) - set(expected)):
        raise NotYet(f"{name!r} is not out of date: it declares no parameter {changed!r} (its params: "
                     f"{keys_of[name]}), and a stage downstream of it cannot make it stale")  # fmt: skip
    expect_same_set(answer, expected, "the stages out of date")
    if _git(project, "status", "--porcelain", "--", "params.yaml").strip():
        raise NotYet("right stages, but params.yaml is still changed: put it back with `git checkout -- params.yaml`")
    return (f"{expected} only: `train` declares `params: [train]`, so its own parameter changed; `prepare` reads "
            "the batches and its script, unchanged. (`repro` would also re-run stages downstream of train: none "
            "here.) params.yaml is back as committed")  # fmt: skip


def _tag_metrics(project: Path, answer: Any) -> str:
    expect_keys(answer, TAGS, "the RMSE of each tag")
    stored = {tag: json.loads(_git(project, "show", f"{tag}:metrics.json")) for tag in TAGS}
    rmse = {tag: float(metrics["holdout_rmse"]) for tag, metrics in stored.items()}
    for tag in TAGS:
        value = answer[tag]
        if hasattr(value, "keys"):
            raise NotYet(f"the answer for {tag} is a dict ({sorted(map(str, value.keys()))}): give the number, "
                         "metrics.json's 'holdout_rmse'")  # fmt: skip
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            expect_type(value, float, f"the RMSE of {tag}")
        if math.isclose(value, rmse[tag], abs_tol=1e-6):
            continue
        if value == stored[tag].get("train_hours"):
            raise NotYet(f"{value} is {tag}'s train_hours, not its holdout_rmse")
        other = [t for t in TAGS if t != tag and math.isclose(value, rmse[t], abs_tol=1e-6)]
        if other:
            raise NotYet(f"{value:g} is the RMSE of {other[0]}, not of {tag}: look at the revision you index")
        raise NotYet(f"{tag}'s metrics.json, as Git stored it, says holdout_rmse {rmse[tag]:g}, not {value:g}")
    return (
        f"{', '.join(f'{t}: {rmse[t]:g}' for t in TAGS)}, as Git stored them: what `metrics.show` reads is "
        "the committed file. v2 and v3 share one holdout, so only they compare; v1's is the end of March"
    )


def _file_md5s(project: Path, rev: str, folder: str = "data/batches") -> dict[str, str]:
    """The MD5 of each file of a DVC-tracked folder at a commit: its `.dvc` file names the folder's listing in the
    cache, a JSON list of (md5, relpath)."""
    import yaml

    (out,) = yaml.safe_load(_git(project, "show", f"{rev}:{folder}.dvc"))["outs"]
    digest = out["md5"]
    listing = Path(project) / ".dvc" / "cache" / "files" / "md5" / digest[:2] / digest[2:]
    return {entry["relpath"]: entry["md5"] for entry in json.loads(listing.read_text())}


def _february(project: Path, model_name: str, version: Any, month: str, answer: Any) -> str:
    from mlflow import MlflowClient

    from mlops_helpers.names import DVC_REV_TAG

    expect_keys(answer, ["run", "v1"], "the MD5s")
    client = MlflowClient()
    run_rev = client.get_run(client.get_model_version(model_name, str(version)).run_id).data.tags[DVC_REV_TAG]
    name = f"{month}.csv"
    expected = {"run": _file_md5s(project, run_rev)[name], "v1": _file_md5s(project, "v1")[name]}
    folder_digests = {_file_md5s_folder(project, rev) for rev in (run_rev, "v1")}
    for key in ("run", "v1"):
        given = answer[key]
        if isinstance(given, bytes):
            raise NotYet(f"the {key!r} MD5 is bytes: give its hex text, `hashlib.md5(...).hexdigest()`")
        given = str(expect_type(given, str, f"the {key!r} MD5"))
        if len(given) == 64:
            raise NotYet(f"the {key!r} digest has 64 hex digits: that is a SHA-256; DVC records MD5s (32 digits)")
        if given in folder_digests or given.endswith(".dir"):
            raise NotYet(f"the {key!r} digest is the whole folder's (data/batches.dvc): read the one file {name}")
        if given != expected[key]:
            swapped = given == expected["v1" if key == "run" else "run"]
            where = "v1" if key == "v1" else "the run's commit"
            why = "you swapped the two revisions" if swapped else f"the commit is the run's tag {DVC_REV_TAG!r}"
            raise NotYet(f"the {key!r} MD5 is not {name}'s at {where}: {why} (read the bytes with mode='rb')")
    if expected["run"] == expected["v1"]:
        return f"the run read {name} as first delivered: the same MD5 as at v1"
    return (f"the MD5s differ: the registered version was trained on {name} as corrected, not as first delivered "
            "at v1, found from the run's `dvc.rev` tag alone")  # fmt: skip


def _file_md5s_folder(project: Path, rev: str, folder: str = "data/batches") -> str:
    import yaml

    (out,) = yaml.safe_load(_git(project, "show", f"{rev}:{folder}.dvc"))["outs"]
    return str(out["md5"]).removesuffix(".dir")


def _utc(value: Any, what: str):
    import pandas as pd

    try:
        stamp = pd.Timestamp(value)
    except (TypeError, ValueError):
        raise NotYet(f"{what} should be a time (a pandas Timestamp), not {value!r:.60}") from None
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _newly_filled(events, demand, ttl_hours: float) -> list[dict]:
    """The events that get a demand row within `ttl_hours` but not within the views' 1 hour: event, row."""
    import pandas as pd

    table = demand.sort_values("event_timestamp").reset_index(drop=True)
    known = pd.DatetimeIndex(table["event_timestamp"])
    found = []
    for t in events["event_timestamp"]:
        i = int(known.searchsorted(t, side="right")) - 1  # newest row known at t
        if i < 0:
            continue
        age = t - table.loc[i, "event_timestamp"]
        if pd.Timedelta(hours=1) < age <= pd.Timedelta(hours=ttl_hours):
            found.append({"event": t, "hour counted": table.loc[i, "hour"], "known at": table.loc[i, "event_timestamp"],
                          "age": age})  # fmt: skip
    return found


def _longer_ttl(events, demand, answer: Any) -> str:
    import pandas as pd

    expected = _newly_filled(events, demand, 3)
    if isinstance(answer, pd.DataFrame):
        answer = answer.to_dict("records")
    rows = [answer] if hasattr(answer, "keys") else as_list(answer, "the events that get a new value")
    if len(rows) != len(expected):
        raise NotYet(f"{len(rows)} event(s) in your answer; {len(expected)} event(s) get a value with a TTL of "
                     "3 hours that they did not get with 1 hour (they are in `expired`)")  # fmt: skip
    by_event = {row["event"]: row for row in expected}
    for row in rows:
        expect_keys(row, ["event", "hour counted", "age"], "each answer")
        event = _utc(row["event"], "'event'")
        if event not in by_event:
            had = event in set(events["event_timestamp"])
            raise NotYet(
                f"{event:%Y-%m-%d %H:%M} "
                + (
                    "got a demand value with the 1-hour TTL already: only the events in `expired` can gain one"
                    if had
                    else "is not one of the events (March's hours)"
                )
            )
        right = by_event[event]
        hour = _utc(row["hour counted"], "'hour counted'")
        if hour == right["known at"]:
            raise NotYet(f"{hour:%H:%M} is when the count became known (its hour ended then): the count is of the "
                         f"hour before, {right['hour counted']:%H:%M} (the demand table's column `hour`)")  # fmt: skip
        if hour != right["hour counted"]:
            raise NotYet(
                f"the event at {event:%H:%M} gets the count of {right['hour counted']:%H:%M}, not {hour:%H:%M}"
            )
        age = row["age"]
        if isinstance(age, numbers.Real) and not isinstance(age, bool):
            age = pd.Timedelta(hours=float(age))
        age = expect_type(pd.Timedelta(age) if hasattr(age, "total_seconds") else age, pd.Timedelta, "'age'")
        if age == event - right["hour counted"]:
            raise NotYet(f"{age} counts from the start of the hour counted; a count is known when its hour ends "
                         f"({right['known at']:%H:%M}): its age is the event's time minus `known_at`")  # fmt: skip
        if age != right["age"]:
            raise NotYet(
                f"the count of {right['hour counted']:%H:%M} is {right['age']} old at {event:%H:%M}, not {age}"
            )
    first = expected[0]
    return (f"{len(expected)} event(s): at {first['event']:%Y-%m-%d %H:%M} the newest count known is "
            f"{first['hour counted']:%H:%M}'s, known since {first['known at']:%H:%M}, {first['age']} old: too old "
            "for the views' 1 hour, within 3. A longer TTL can only fill empty rows (merge_asof takes the newest row "
            "either way), so every other row is unchanged; the price is a stale value passed off as fresh")  # fmt: skip


def _celsius_row(latest, served, answer: Any) -> str:
    features = [name for name in served if name != "city"]
    expect_keys(answer, features, "the °C service's feature row")
    stored = float(served["temp"])
    temp = float(expect_type(answer["temp"], numbers.Real, "its 'temp'"))
    differ = [n for n in features if n != "temp" and not math.isclose(float(answer[n]), float(served[n]), rel_tol=1e-9)]
    if differ:
        raise NotYet(f"only temp changes; {differ} differ from served_dc too: copy the row with `{{**served_dc, ...}}`")
    if math.isclose(temp, stored, rel_tol=1e-9):
        raise NotYet(f"temp is still {stored:g}, the dataset's scale: in °C it is {TEMP_SCALE} times that")
    if math.isclose(temp, stored / TEMP_SCALE, rel_tol=1e-6):
        raise NotYet(f"{temp:.4g} is the stored temp divided by {TEMP_SCALE}: °C is the stored value *times* "
                     f"{TEMP_SCALE} (the course's convention: temp is °C / {TEMP_SCALE})")  # fmt: skip
    if not math.isclose(temp, stored * TEMP_SCALE, rel_tol=1e-6):
        raise NotYet(f"temp {temp:.4g} is not {stored:g} in °C: by the course's convention temp is °C / {TEMP_SCALE}")
    caught = [n for n in features if not math.isclose(float(latest[n]), float(answer[n]), rel_tol=1e-9)]
    if caught != ["temp"]:
        raise NotYet(f"skew(latest, row) would name {caught}: served_dc should equal the latest training row")
    return (f"temp {temp:.4g} °C against the training row's {float(latest['temp']):.4g}: skew names only 'temp', "
            "and dividing by 41 again makes it agree. The check compares values, so a unit change with no range "
            "alarm on the service's side is caught the first time it serves")  # fmt: skip


def notebook_11(project, model_name: str, version: Any, month: str, events, demand, latest, served) -> tuple:
    """Notebook 11's five exercises: DVC's project, the registered version's run, and the feature tables."""
    project = Path(project)
    return (
        Exercise("11", 1, partial(_stale_stages, project), [
            "Write the changed `params` with `yaml.safe_dump`, then `with contextlib.chdir(project), Repo() as repo:`.",
            "`repo.status()` is a dict keyed by stage; answer it (or its keys), after `git('checkout', '--', ...)`.",
        ]),
        Exercise("11", 2, partial(_tag_metrics, project), [
            "`repo.metrics.show(revs=['v1', 'v2', 'v3'])`, in the project folder, gives every tag at once.",
            "`shown[rev]['data']['metrics.json']['data']['holdout_rmse']`; `git('show', f'{rev}:metrics.json')`.",
            "Answer `{'v1': rmse, 'v2': rmse, 'v3': rmse}`, numbers.",
        ]),
        Exercise("11", 3, partial(_february, project, model_name, version, month), [
            "The registered version's run: `client.get_run(version.run_id).data.tags[names.DVC_REV_TAG]`.",
            "`dvc_api.read(f'data/batches/{CORRECTED_MONTH}.csv', repo=str(project), rev=..., mode='rb')`.",
            "Answer `{'run': hashlib.md5(bytes_at_run).hexdigest(), 'v1': hashlib.md5(bytes_at_v1).hexdigest()}`.",
        ]),
        Exercise("11", 4, partial(_longer_ttl, events, demand), [
            "`point_in_time(..., pd.Timedelta(hours=3))` for demand; weather keeps `TTL`. Keep demand's `hour`.",
            "The rows that change are among `expired`; `known_at` is when the value became known.",
            "Answer `{'event': ..., 'hour counted': ..., 'age': event - known_at}` (timestamps and a Timedelta).",
        ]),
        Exercise("11", 5, partial(_celsius_row, latest, served), [
            "`{**served_dc, 'temp': ...}` copies the row with one value replaced.",
            "The course's convention: temp is °C / 41; `skew(latest, row)` should name only 'temp'. Answer the row.",
        ]),
    )  # fmt: skip
