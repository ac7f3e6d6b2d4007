"""Notebook 11's exercise checks: "not yet" on the empty answer, the common mistakes named, the solution passes; on a
small DVC project with three tags, a registered version whose run records its commit, and the notebook's tables."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess

import mlflow
import pandas as pd
import pytest
import yaml
from exercise_checks import not_yet, passes

from mlops_helpers import data, exercises, names

MONTH = "2011-02"


@pytest.fixture(scope="module")
def project(tmp_path_factory, module_tracking_env):
    """A DVC project tagged v1 (February as first delivered), v2 (corrected) and v3 (a parameter), and a registered
    version whose run's `dvc.rev` is v3's commit: ``(project, model name, version)``."""
    from dvc.cli import main as dvc_cli

    from mlops_helpers import workspace

    root = tmp_path_factory.mktemp("nb11")
    project = root / "citybikes"
    project.mkdir()
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }

    def git(*args):
        done = subprocess.run(["git", *args], cwd=project, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def dvc(*args):
        with contextlib.chdir(project):
            assert dvc_cli(list(args)) == 0

    git("init", "--quiet", "--initial-branch=main")
    dvc("init", "--quiet")
    batches = project / "data" / "batches"
    batches.mkdir(parents=True)
    (batches / "2011-01.csv").write_text("day,temp\n1,0.20\n")
    (batches / f"{MONTH}.csv").write_text("day,temp\n1,0.25\n")
    dvc("add", "--quiet", "data/batches")
    (project / "dvc.yaml").write_text(yaml.safe_dump({"stages": {
        "prepare": {"cmd": "python src/prepare.py", "deps": ["src/prepare.py", "data/batches"]},
        "train": {"cmd": "python src/train.py", "deps": ["src/train.py"], "params": ["train"]},
    }}))  # fmt: skip
    params = {"train": {"max_depth": 3, "learning_rate": 0.1}}
    for tag, rmse in (("v1", 80.123), ("v2", 91.5), ("v3", 77.05)):
        if tag == "v2":
            (batches / f"{MONTH}.csv").write_text("day,temp\n1,0.27\n")  # February, corrected
            dvc("add", "--quiet", "data/batches")
        if tag == "v3":
            params["train"]["max_depth"] = 5
        (project / "params.yaml").write_text(yaml.safe_dump(params))
        (project / "metrics.json").write_text(json.dumps({"holdout_rmse": rmse, "train_hours": 2450}))
        git("add", "--all")
        git("commit", "--quiet", "--message", tag)
        git("tag", tag)
    workspace.setup(root / "workspace", experiment="exercise-test-11")
    with mlflow.start_run() as run:
        mlflow.set_tags({names.DVC_REV_TAG: git("rev-parse", "HEAD"), names.DVC_REPO_TAG: str(project)})
    client = mlflow.MlflowClient()
    client.create_registered_model("exercise-test-dvc")
    version = client.create_model_version("exercise-test-dvc", run.info.artifact_uri, run_id=run.info.run_id)
    return project, "exercise-test-dvc", version.version


@pytest.fixture(scope="module")
def tables():
    """The notebook's events and demand tables (March's hours, and demand known when its hour ends)."""
    source = data.load_bikes()
    bikes = source[(source.index >= "2011-02-15") & (source.index < "2011-04-01")]
    counts = bikes["bikers"].astype(float).asfreq("h")
    demand = pd.DataFrame({
        "city": "dc", "hour": counts.index.tz_localize("UTC"),
        "event_timestamp": (counts.index + pd.Timedelta(hours=1)).tz_localize("UTC"),
        "bikers_last_hour": counts.to_numpy(), "bikers_last_3h": counts.rolling(3, min_periods=1).mean().to_numpy(),
    }).dropna(subset=["bikers_last_hour"])  # fmt: skip
    march = bikes[bikes.index >= "2011-03-01"]
    events = pd.DataFrame({"city": "dc", "event_timestamp": march.index.tz_localize("UTC"), "bikers": march["bikers"]})
    return events.reset_index(drop=True), demand


@pytest.fixture(scope="module")
def checks(project, tables):
    project_dir, model_name, version = project
    served = {"city": "dc", "temp": 0.34, "atemp": 0.32, "hum": 0.5, "hr": 23, "bikers_last_hour": 24.0}
    latest = pd.Series({**served, "event_timestamp": pd.Timestamp("2011-03-31 23:00", tz="UTC")})
    return exercises.notebook_11(project_dir, model_name, version, MONTH, *tables, latest, served), served


def test_empty_answers_are_not_yet(checks):
    for q in checks[0]:
        not_yet(q.check(...), "no answer: replace `...`")


def test_1_stale_stages(project, checks):
    from dvc.repo import Repo

    project_dir = project[0]
    q1 = checks[0][0]
    params = yaml.safe_load((project_dir / "params.yaml").read_text())
    params["train"]["learning_rate"] = 0.05
    (project_dir / "params.yaml").write_text(yaml.safe_dump(params))
    with contextlib.chdir(project_dir), Repo() as repo:
        stale = {name: value for name, value in repo.status().items() if name in ("prepare", "train")}
    not_yet(q1.check(["prepare", "train"]), "'prepare' is not out of date", "declares no parameter")
    not_yet(q1.check(["evaluate"]), "dvc.yaml has no stage ['evaluate']")
    not_yet(q1.check(["train"]), "params.yaml is still changed", "git checkout")
    subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=project_dir, check=True)
    not_yet(q1.check([]), "missing ['train']")
    passes(q1.check(["train"]))
    passes(q1.check({"train": stale.get("train", [])}))  # Repo.status()'s dict, keyed by stage


def test_2_metrics_of_every_tag(checks):
    q2 = checks[0][1]
    not_yet(q2.check({"v1": 80.123, "v2": 91.5}), "lacks the key(s) ['v3']")
    not_yet(q2.check({"v1": 80.123, "v2": 77.05, "v3": 77.05}), "77.05 is the RMSE of v3, not of v2")
    not_yet(q2.check({"v1": 80.123, "v2": 91.5, "v3": 2450}), "train_hours")
    not_yet(q2.check({"v1": {"holdout_rmse": 80.123}, "v2": 91.5, "v3": 77.05}), "give the number")
    not_yet(q2.check({"v1": "80.123", "v2": 91.5, "v3": 77.05}), "should be a float")
    passes(q2.check({"v1": 80.123, "v2": 91.5, "v3": 77.05}))


def test_3_february_at_the_runs_commit(project, checks):
    import dvc.api as dvc_api
    from mlflow import MlflowClient

    project_dir, model_name, version = project
    q3 = checks[0][2]
    client = MlflowClient()
    rev = client.get_run(client.get_model_version(model_name, version).run_id).data.tags[names.DVC_REV_TAG]
    path = f"data/batches/{MONTH}.csv"

    def read(at):
        return dvc_api.read(path, repo=str(project_dir), rev=at, mode="rb")

    then, first = hashlib.md5(read(rev)).hexdigest(), hashlib.md5(read("v1")).hexdigest()
    not_yet(q3.check({"run": then}), "lacks the key(s) ['v1']")
    not_yet(q3.check({"run": first, "v1": then}), "you swapped the two revisions")
    not_yet(q3.check({"run": hashlib.sha256(read(rev)).hexdigest(), "v1": first}), "SHA-256")
    not_yet(q3.check({"run": hashlib.md5(read(rev)).digest(), "v1": first}), "hexdigest")
    folder = yaml.safe_load((project_dir / "data" / "batches.dvc").read_text())["outs"][0]["md5"]
    not_yet(q3.check({"run": folder, "v1": first}), "the whole folder's")
    verdict = q3.check({"run": then, "v1": first})
    passes(verdict)
    assert "as corrected" in verdict.message


def test_4_a_longer_ttl(tables, checks):
    events, demand = tables
    q4 = checks[0][3]

    def point_in_time(left, table, ttl):
        table = table.rename(columns={"event_timestamp": "known_at"}).sort_values("known_at")
        return pd.merge_asof(left.sort_values("event_timestamp"), table, left_on="event_timestamp",
                             right_on="known_at", by="city", direction="backward", tolerance=ttl)  # fmt: skip

    short = point_in_time(events, demand.drop(columns="hour"), pd.Timedelta(hours=1))
    longer = point_in_time(events, demand.drop(columns="hour"), pd.Timedelta(hours=3))
    (filled,) = longer[short["known_at"].isna() & longer["known_at"].notna()].to_dict("records")
    counted = demand.loc[demand["event_timestamp"] == filled["known_at"], "hour"].item()
    age = filled["event_timestamp"] - filled["known_at"]
    answer = {"event": filled["event_timestamp"], "hour counted": counted, "age": age}
    not_yet(q4.check({**answer, "hour counted": filled["known_at"]}), "when the count became known")
    not_yet(q4.check({**answer, "age": filled["event_timestamp"] - counted}), "counts from the start of the hour")
    not_yet(q4.check({**answer, "event": events["event_timestamp"].iloc[0]}), "got a demand value with the 1-hour")
    not_yet(q4.check([answer, answer]), "2 event(s) in your answer; 1 event(s)")
    not_yet(q4.check({**answer, "age": "two hours"}), "'age'")
    passes(q4.check(answer))
    passes(q4.check({**answer, "event": filled["event_timestamp"].tz_convert(None), "age": age.total_seconds() / 3600}))


def test_5_a_serving_path_in_celsius(checks):
    (*_, q5), served = checks
    not_yet(q5.check(dict(served)), "still", "the dataset's scale")
    not_yet(q5.check({**served, "temp": served["temp"] / 41}), "*times*")
    not_yet(q5.check({**served, "temp": served["temp"] * 41, "hum": 50.0}), "['hum'] differ")
    not_yet(q5.check({**served, "temp": served["temp"] * 41 + 273.15}), "not 0.34 in °C")
    not_yet(q5.check({"temp": served["temp"] * 41}), "lacks the key(s)")
    passes(q5.check({**served, "temp": served["temp"] * 41}))
