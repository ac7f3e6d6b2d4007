"""The CI/CD pipeline: each stage, each refusal path, and the promise that a refusal leaves the registry as it was."""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import fields

import mlflow
import pandas as pd
import pytest

from mlops_helpers import catchup, data, pipeline, processes, workspace
from mlops_helpers.names import MODEL_NAME as NAME
from mlops_helpers.registry import Registry, RegistryError


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A workspace with notebook 03's state (a champion), built once and copied for each test."""
    root = tmp_path_factory.mktemp("template") / "workspace"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_WORKSPACE", str(root))
        catchup.ensure_champion(workspace.setup())
    return root


@pytest.fixture
def ws(template, tmp_path, monkeypatch):
    root = tmp_path / "workspace"
    shutil.copytree(template, root)
    monkeypatch.setenv("COURSE_WORKSPACE", str(root))
    return workspace.setup()


@pytest.fixture(scope="module")
def batches(tmp_path_factory):
    """CSV batches in the source format: January-May (good), the same corrupted, and too short."""
    folder = tmp_path_factory.mktemp("batches")
    raw = pd.read_csv(data.DATA_DIR / data.BIKES_FILE)
    good = raw[raw["day"] <= 151]
    good.to_csv(folder / "jan-may.csv", index=False)
    bad = good.copy()
    bad.loc[bad.index[:50], "temp"] = 25.0
    bad.loc[bad.index[60], "weathersit"] = "sunny"
    bad.to_csv(folder / "corrupted.csv", index=False)
    good.head(24 * 9).to_csv(folder / "nine-days.csv", index=False)
    return folder


def _state():
    return Registry(NAME).state()


def _config(path, **kw):
    return pipeline.PipelineConfig(data=path, integration_test=False, **kw)


def test_a_better_model_is_promoted_and_the_old_champion_kept(ws, batches):
    before = _state()
    result = pipeline.run_pipeline(_config(batches / "jan-may.csv", window=("2011-01-01", "2011-06-01")))
    assert result.exit_code == 0 and result.promoted
    assert [s.stage for s in result.stages] == ["validate", "train", "evaluate", "register", "integration", "promote"]
    after = _state()
    assert after["aliases"] == {"champion": result.version, "previous-champion": before["aliases"]["champion"]}
    assert after["versions"] == [*before["versions"], int(result.version)]
    run = mlflow.get_run(result.run_id)
    assert run.data.metrics["holdout_rmse"] < run.data.metrics["champion_holdout_rmse"]
    assert run.data.tags["stage.6.promote"] == "passed" and run.data.tags["pipeline.exit_code"] == "0"
    audit = mlflow.MlflowClient().get_model_version(NAME, result.version).tags["alias.champion"]
    assert '"why": "pipeline run"' in audit


def test_the_integration_stage_serves_the_challenger_for_real(ws, batches):
    config = _config(batches / "jan-may.csv")
    config.integration_test = True
    result = pipeline.run_pipeline(config)
    assert result.exit_code == 0, result.table().to_string()
    integration = next(s for s in result.stages if s.stage == "integration")
    assert integration.passed and "3 bad requests" in integration.verdict
    logged = (ws.root / "pipeline" / f"integration-v{result.version}.jsonl").read_text().splitlines()
    assert len(logged) == 3  # the input example's rows; the refused requests were never predicted
    assert not processes.running()


def test_corrupted_data_is_refused_before_training(ws, batches):
    before = _state()
    result = pipeline.run_pipeline(_config(batches / "corrupted.csv"))
    assert result.exit_code == pipeline.EXIT_CODES["validate"] == 10
    assert [s.stage for s in result.stages] == ["validate"]
    assert {v["column"] for v in result.stages[0].details["violations"]} == {"temp", "weathersit"}
    assert _state() == before
    assert not mlflow.get_run(result.run_id).outputs.model_outputs  # nothing trained


def test_a_window_mismatch_is_a_validation_refusal(ws, batches):
    result = pipeline.run_pipeline(_config(batches / "jan-may.csv", window=("2011-02-01", "2011-06-01")))
    assert result.exit_code == 10 and "day,hr" in result.stages[0].verdict


def test_too_little_data_is_refused_at_training(ws, batches):
    before = _state()
    result = pipeline.run_pipeline(_config(batches / "nine-days.csv", holdout_days=7))
    assert result.exit_code == pipeline.EXIT_CODES["train"] and "too little data" in result.stages[-1].verdict
    assert _state() == before


def test_a_weaker_model_is_refused_by_the_gate(ws, batches):
    promoted = pipeline.run_pipeline(_config(batches / "jan-may.csv"))
    before = _state()
    result = pipeline.run_pipeline(_config(batches / "jan-may.csv", family="ridge", max_rmse=1000))
    assert result.exit_code == pipeline.EXIT_CODES["evaluate"] == 30
    assert "not better than the champion" in result.stages[-1].verdict
    assert _state() == before and before["aliases"]["champion"] == promoted.version
    run = mlflow.get_run(result.run_id)
    assert run.data.tags["stage.3.evaluate"] == "refused"  # the refusal is recorded on the run


def test_the_absolute_threshold_refuses_without_a_champion_too(ws, batches):
    result = pipeline.run_pipeline(_config(batches / "jan-may.csv", max_rmse=5.0, model_name="brand-new"))
    assert result.exit_code == 30 and "above the threshold 5.00" in result.stages[-1].verdict
    assert Registry("brand-new").state()["exists"] is False


@pytest.mark.parametrize(
    ("stage", "target"),
    [("register", "register_model"), ("integration", "integration_test"), ("promote", "promote")],
)
def test_failures_after_training_leave_the_registry_as_it_was(ws, batches, monkeypatch, stage, target):
    before = _state()

    def broken(*args, **kwargs):
        if target == "integration_test":
            return ["the input example got HTTP 500"]
        raise RuntimeError(f"{target} broke")

    owner = {"register_model": mlflow, "integration_test": pipeline, "promote": Registry}[target]
    monkeypatch.setattr(owner, target, broken)
    config = _config(batches / "jan-may.csv")
    config.integration_test = stage == "integration"
    result = pipeline.run_pipeline(config)
    assert result.exit_code == pipeline.EXIT_CODES[stage]
    assert result.failed_stage == stage and result.version is None
    assert _state() == before  # same aliases, no half-registered version


def test_rollback_swaps_and_a_second_rollback_undoes_it(ws, batches):
    old = _state()["aliases"]["champion"]
    new = pipeline.run_pipeline(_config(batches / "jan-may.csv")).version
    client = mlflow.MlflowClient()
    assert Registry(NAME).rollback("bad release") == {"champion": old, "previous-champion": new}
    assert _state()["aliases"] == {"champion": old, "previous-champion": new}
    Registry(NAME).rollback("it was fine")
    assert _state()["aliases"] == {"champion": new, "previous-champion": old}
    assert "bad release" in client.get_model_version(NAME, old).tags["alias.champion"]
    assert len(_state()["versions"]) == 2  # nothing deleted


def test_without_promotion_the_version_waits_as_challenger(ws, batches):
    before = _state()
    result = pipeline.run_pipeline(_config(batches / "jan-may.csv", promote=False, reason="canary"))
    assert result.exit_code == 0 and not result.promoted and result.failed_stage is None
    assert "skipped (--no-promote)" in result.stages[-1].verdict
    assert _state()["aliases"] == {**before["aliases"], "challenger": result.version}
    assert mlflow.get_run(result.run_id).data.tags["pipeline.promoted"] == "False"


def test_every_alias_move_is_in_the_audit_trail_in_order(ws, batches, monkeypatch):
    monkeypatch.setenv("USER", "auditor")
    registry = Registry(NAME)
    start = len(registry.events())
    old = _state()["aliases"]["champion"]
    new = pipeline.run_pipeline(_config(batches / "jan-may.csv", reason="monthly retrain")).version
    registry.rollback("bad release")
    refused = pipeline.run_pipeline(_config(batches / "jan-may.csv", max_rmse=1.0))  # refused before registering
    assert refused.exit_code == 30
    events = registry.events()[start:]
    moves = [(e["action"], e["alias"], e["version"], e["from"]) for e in events]
    assert moves == [
        ("set", "challenger", new, None),  # register
        ("set", "previous-champion", old, None),  # promote keeps the old champion reachable
        ("set", "champion", new, old),
        ("delete", "challenger", None, new),  # the promoted challenger is no longer one
        ("set", "champion", old, new),  # rollback
        ("set", "previous-champion", new, old),
    ]
    assert [e["seq"] for e in events] == list(range(start + 1, start + 7))
    assert {e["by"] for e in events} == {"auditor"} and all(e["at"].endswith("Z") for e in events)
    assert events[2]["why"] == "monthly retrain" and events[4]["why"] == "bad release"


def test_a_refusal_after_registration_is_recorded_as_a_restore(ws, batches, monkeypatch):
    registry = Registry(NAME)
    start = len(registry.events())
    monkeypatch.setattr(pipeline, "integration_test", lambda *a, **k: ["the input example got HTTP 500"])
    config = _config(batches / "jan-may.csv")
    config.integration_test = True
    result = pipeline.run_pipeline(config)
    assert result.exit_code == pipeline.EXIT_CODES["integration"]
    events = registry.events()[start:]
    assert [(e["action"], e["alias"]) for e in events] == [("set", "challenger"), ("delete", "challenger")]
    assert events[1]["why"] == "restored: refused at integration"
    assert registry.remove("challenger", "nothing to remove") is None  # no alias, no event


def test_rollback_without_a_previous_champion_is_refused(ws):
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        Registry(NAME).rollback()


def test_the_command_line_options_are_the_config_fields_with_their_defaults():
    parser = argparse.ArgumentParser()
    pipeline.add_config_options(parser)
    parsed = vars(parser.parse_args(["--data", "batch.csv"]))
    config = pipeline.PipelineConfig(data="batch.csv")
    assert parsed.keys() == {f.name for f in fields(pipeline.PipelineConfig)}
    assert {k: v for k, v in parsed.items() if k != "params"} == {
        f.name: getattr(config, f.name) for f in fields(pipeline.PipelineConfig) if f.name != "params"
    }
    every = ["--data", "b.csv", "--window", "2011-01-01:2011-06-01", "--tracking-uri", "sqlite:///x.db",
             "--model-name", "other", "--experiment", "exp", "--family", "ridge", "--param", "alpha=3",
             "--holdout-days", "7", "--max-rmse", "60", "--min-improvement", "0.1", "--no-integration-test",
             "--no-promote", "--reason", "why", "--lease-wait", "5"]  # fmt: skip
    changed = vars(parser.parse_args(every))
    assert all(changed[k] != v for k, v in parsed.items()), "every option changes its field"


def test_one_list_of_stages_gives_exit_codes_and_tags():
    assert [s.name for s in pipeline.STAGES] == ["validate", "train", "evaluate", "register", "integration", "promote"]
    assert [pipeline.EXIT_CODES[s.name] for s in pipeline.STAGES] == [10, 20, 30, 40, 50, 60]
    assert pipeline.stage_tag("evaluate") == "stage.3.evaluate"
    from mlops_helpers import kfp_runtime

    assert kfp_runtime.step_tag("evaluate") == "stage.3.evaluate"  # the same tags on Kubeflow


def test_cli_exit_codes(ws, batches, capsys):
    assert pipeline.main(["run", "--data", str(batches / "corrupted.csv"), "--no-integration-test"]) == 10
    assert pipeline.main(["run", "--data", str(batches / "missing.csv")]) == 2
    assert pipeline.main(["rollback"]) == pipeline.EXIT_CODES["rollback"]
    assert pipeline.main(["status"]) == 0
    out = capsys.readouterr().out
    assert "validate    REFUSED data contract" in out and "REFUSED at validate (exit 10)" in out
    with pytest.raises(SystemExit):
        pipeline.main(["run", "--data", "x.csv", "--window", "2011-06-01:2011-01-01"])


# ------------------------------------------------------------------------------------------------ the human gate
def _waiting_challenger(batches) -> pipeline.PipelineResult:
    result = pipeline.run_pipeline(_config(batches / "jan-may.csv", promote=False, reason="spring data"))
    assert result.exit_code == 0 and not result.promoted
    return result


def test_approve_promotes_the_waiting_challenger_and_records_who_and_why(ws, batches):
    registry = Registry(NAME)
    old = _state()["aliases"]["champion"]
    waiting = _waiting_challenger(batches)
    start = len(registry.events())
    moved = pipeline.approve(waiting.version, by="alice", why="holdout error halved", registry=registry)
    assert moved == {"champion": waiting.version, "previous-champion": old}
    assert _state()["aliases"] == {"champion": waiting.version, "previous-champion": old}  # challenger removed
    events = registry.events()[start:]
    assert [(e["action"], e["alias"]) for e in events] == [
        ("set", "previous-champion"),
        ("set", "champion"),
        ("delete", "challenger"),
    ]
    assert {e["by"] for e in events} == {"alice"} and events[1]["why"] == "holdout error halved"
    assert mlflow.get_run(waiting.run_id).data.tags["pipeline.promoted"] == "True"  # the run's outcome, completed


def _not_the_challenger(registry, waiting):
    return registry.aliases()["champion"], "alice", "why not"


def _no_reason(registry, waiting):
    return waiting.version, "alice", "  "


def _nobody(registry, waiting):
    return waiting.version, "", "looks good"


def _registered_by_hand(registry, waiting):
    source = mlflow.MlflowClient().get_model_version(NAME, waiting.version).source
    return registry.register(source, "registered around the pipeline"), "alice", "looks good"


def _failed_run(registry, waiting):
    mlflow.MlflowClient().set_tag(waiting.run_id, "pipeline.exit_code", "50")
    return waiting.version, "alice", "looks good"


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (_not_the_challenger, "is not the current 'challenger' (the challenger is version"),
        (_no_reason, "give both --by and --why"),
        (_nobody, "give both --by and --why"),
        (_registered_by_hand, "was not registered by a pipeline run"),
        (_failed_run, "did not pass (exit code 50)"),
    ],
    ids=lambda case: getattr(case, "__name__", "")[1:],
)
def test_approve_refuses_what_no_passed_pipeline_run_left_waiting(ws, batches, case, message):
    registry = Registry(NAME)
    waiting = _waiting_challenger(batches)
    version, by, why = case(registry, waiting)
    before = _state()
    with pytest.raises(pipeline.ApprovalRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        pipeline.approve(version, by=by, why=why, registry=registry)
    assert _state() == before


def test_approve_refuses_when_nothing_waits(ws):
    with pytest.raises(pipeline.ApprovalRefused, match="there is no challenger"):
        pipeline.approve("1", by="alice", why="looks good")


def test_cli_approve(ws, batches, capsys):
    waiting = _waiting_challenger(batches)
    capsys.readouterr()
    assert pipeline.main(["approve", "--version", "999", "--by", "bob", "--why", "ship it"]) == 80
    assert "approve: REFUSED, version 999 is not the current 'challenger'" in capsys.readouterr().err
    assert pipeline.main(["approve", "--version", waiting.version, "--by", "bob", "--why", "ship it"]) == 0
    out = capsys.readouterr().out
    assert f"approve: champion -> version {waiting.version}" in out and "approved by bob: ship it" in out
    assert Registry(NAME).events()[-2]["by"] == "bob"
    with pytest.raises(SystemExit):  # who and why are required options
        pipeline.main(["approve", "--version", waiting.version])


def test_approve_refuses_a_version_from_a_run_that_is_no_pipeline_run(ws, batches):
    registry = Registry(NAME)
    waiting = _waiting_challenger(batches)
    with mlflow.start_run() as by_hand:  # a run that never went through the pipeline's stages
        pass
    mlflow.MlflowClient().set_model_version_tag(NAME, waiting.version, "pipeline_run", by_hand.info.run_id)
    with pytest.raises(pipeline.ApprovalRefused, match="is not a finished pipeline run"):
        pipeline.approve(waiting.version, by="alice", why="looks good", registry=registry)


# -- what crashed runs leave, and the recovery a run does first ------------------------------------------------------
def _dead_pid() -> tuple[int, float]:
    """The PID and start time of a process that has exited."""
    import subprocess
    import sys

    import psutil

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    born = psutil.Process(child.pid).create_time()
    child.kill()
    child.wait()
    return child.pid, born


def test_a_run_of_a_dead_process_is_found_and_its_leftovers_resolved(ws, capsys):
    """A RUNNING run whose process is gone (no lease left: the fallback path), with an untested challenger, a half
    registration, a pending logged model and a partial upload: status shows them, recover resolves and records them."""
    from mlflow.entities import LoggedModelStatus

    from mlops_helpers.names import PIPELINE_RUN_TAG, RUN_HEARTBEAT_TAG, RUN_OWNER_TAG
    from mlops_helpers.registry import HOST

    client = mlflow.MlflowClient()
    before = _state()
    pid, born = _dead_pid()
    experiment = workspace.ensure_experiment(ws, pipeline.PIPELINE_EXPERIMENT)
    owner = json.dumps({"host": HOST, "pid": pid, "born": born, "model": NAME})
    run = client.create_run(experiment, tags={RUN_OWNER_TAG: owner, RUN_HEARTBEAT_TAG: "0"})
    run_id = run.info.run_id
    source = client.get_model_version(NAME, before["aliases"]["champion"]).source
    for _ in range(2):
        client.create_model_version(NAME, source, tags={PIPELINE_RUN_TAG: run_id})
    untested, half = map(str, _state()["versions"][-2:])
    Registry(NAME).move("challenger", untested, "the crashed run's challenger")
    model = client.create_logged_model(experiment, source_run_id=run_id)
    partial = pipeline._local_folder(run.info.artifact_uri) / f"{pipeline.PARTIAL_UPLOAD}x1y2"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"\0" * 1024)

    assert pipeline.main(["status"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert any(f"run {run_id} is RUNNING, but its process (pid {pid}" in line for line in shown["leftovers"])
    assert f"version {half} of run {run_id}, no alias (a half registration)" in shown["leftovers"]
    assert f"version {untested} of run {run_id}, aliases challenger" in shown["leftovers"]
    assert any(str(partial) in line for line in shown["leftovers"])

    assert pipeline.main(["recover"]) == 0
    assert "recovered: ended pipeline run" in capsys.readouterr().out
    assert _state() == before and not partial.exists()
    assert client.get_run(run_id).info.status == "KILLED"
    assert client.get_logged_model(model.model_id).status == LoggedModelStatus.FAILED
    assert pipeline.leftovers(Registry(NAME)) == [] and pipeline.dead_runs(pipeline.PIPELINE_EXPERIMENT) == []
    note = Registry(NAME).events()[-1]
    assert note["action"] == "recover" and run_id in note["why"]
    assert pipeline.main(["recover"]) == 0 and "nothing was left" in capsys.readouterr().out


def test_a_run_of_a_live_process_elsewhere_is_left_alone_until_its_heartbeat_stops():
    from types import SimpleNamespace

    from mlops_helpers.names import RUN_HEARTBEAT_TAG, RUN_OWNER_TAG

    now = 1_000_000.0
    owner = json.dumps({"host": "another-machine", "pid": 1, "born": 0.0, "model": NAME})

    def run(beat: float):
        return SimpleNamespace(data=SimpleNamespace(tags={RUN_OWNER_TAG: owner, RUN_HEARTBEAT_TAG: str(beat)}),
                               info=SimpleNamespace(start_time=0))  # fmt: skip

    assert pipeline.run_gone(run(now - 30), now) is None
    assert "no heartbeat from another-machine" in pipeline.run_gone(run(now - pipeline.RUN_STALE - 1), now)
    assert pipeline.run_gone(SimpleNamespace(data=SimpleNamespace(tags={}), info=None), now) is None  # no owner


def test_the_partial_upload_prefix_is_still_mlflows():
    from mlflow.store.artifact import local_artifact_repo

    assert pipeline.PARTIAL_UPLOAD == local_artifact_repo._TEMP_ARTIFACT_PREFIX


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"", ["the batch: the file is empty (0 bytes)", "what to do: export the batch again"]),
        (b"season,mnth\n1,Jan\n", ["day: column is missing", "expected columns: season, mnth, day"]),
    ],
    ids=["empty", "missing columns"],
)
def test_a_refused_batch_names_the_problem_the_fix_and_the_report_which_every_run_rewrites(ws, tmp_path, content, says):
    path = tmp_path / "batch.csv"
    path.write_bytes(content)
    lines = []
    result = pipeline.run_pipeline(_config(path), echo=lines.append)
    assert result.exit_code == 10
    report = ws.root / "pipeline" / "validation.json"
    assert lines[-1] == f"      report: {report}"
    for text in says:
        assert any(text in line for line in lines), (text, lines)
    assert json.loads(report.read_text())["ok"] is False
    good = tmp_path / "good.csv"
    data.source_batch("2011-01-01:2011-02-01").to_csv(good, index=False)
    pipeline.run_pipeline(_config(good, max_rmse=1.0), echo=lines.append)  # passes validation, refused later
    assert json.loads(report.read_text())["ok"] is True  # rewritten by the next run
