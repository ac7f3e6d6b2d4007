"""The GitHub Actions workflows: valid against GitHub's schema (offline), and running what the course runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import requests
import yaml

from mlops_helpers import REPO_ROOT, environment, processes

WORKFLOWS = REPO_ROOT / ".github" / "workflows"
CHECK = Path(sys.executable).parent / "check-jsonschema"


def _load(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


@pytest.mark.parametrize("name", ["ci.yml", "train-and-deploy.yml"])
def test_workflow_matches_githubs_schema(name):
    done = subprocess.run(
        [str(CHECK), "--builtin-schema", "vendor.github-workflows", str(WORKFLOWS / name)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_schema_check_can_fail(tmp_path):
    broken = _load("ci.yml")
    broken["jobs"]["test"]["runs-on"] = {"not": "a runner"}
    broken["jobs"]["test"]["steps"] = "make test"
    path = tmp_path / "broken.yml"
    path.write_text(yaml.safe_dump(broken))
    done = subprocess.run([str(CHECK), "--builtin-schema", "vendor.github-workflows", str(path)], capture_output=True)
    assert done.returncode != 0


def test_ci_runs_make_test_on_311_and_the_course_on_the_newest_python():
    workflow = _load("ci.yml")
    triggers = workflow[True]  # PyYAML reads the key `on` as True
    assert {"push", "pull_request"} <= set(triggers)
    newest = ".".join(map(str, environment.SUPPORTED_PYTHONS[-1]))
    for job, version, commands in [
        ("test", "3.11", ["make test PYTHON="]),
        ("newest", newest, ["make setup PYTHON=", "make -j2 --output-sync=target unit course"]),
    ]:
        steps = workflow["jobs"][job]["steps"]
        assert [s["with"]["python-version"] for s in steps if "python-version" in s.get("with", {})] == [version]
        script = "\n".join(s.get("run", "") for s in steps)
        assert all(command in script for command in commands), (job, script)
        # make setup must use the Python this job set up, not the newest one the runner happens to have
        assert "steps.python.outputs.python-path" in script


def test_ci_run_calls_make_test_on_311_and_the_newest_leg():
    script = (REPO_ROOT / ".ci" / "run").read_text()
    assert 'make test PYTHON="$py311" "${newest_leg[@]}"' in script
    assert 'NEWEST_VENV=".venv-$version" NEWEST_PYTHON="$newest"' in script and "scripts/find_python.sh" in script
    makefile = (REPO_ROOT / "Makefile").read_text()
    # the re-run executes every notebook on the newest Python, and its version-dependent unit tests run there
    assert "RERUN = $(RERUN_VENV)/bin/python -m pytest" in makefile and "tests/notebook_runs" in makefile
    jobs = "test-jobs: nbval unit-slow unit-fast $(if $(NEWEST_VENV),newest-venv,) browser"
    assert jobs + " $(if $(NEWEST_VENV),unit-newest,) rerun-after-nbval" in makefile
    assert "rerun-after-nbval: nbval student $(if $(NEWEST_VENV),newest-venv,)" in makefile


def test_train_and_deploy_runs_the_pipeline_cli_on_push_schedule_and_by_hand():
    workflow = _load("train-and-deploy.yml")
    triggers = workflow[True]
    assert triggers["push"]["branches"] == ["main"] and triggers["schedule"] and "workflow_dispatch" in triggers
    assert workflow["concurrency"]["cancel-in-progress"] is False  # two promotions never race
    steps = workflow["jobs"]["pipeline"]["steps"]
    script = "\n".join(s.get("run", "") for s in steps)
    assert "make setup" in script
    assert "python -m mlops_helpers.pipeline run" in script and '--tracking-uri "$MLFLOW_TRACKING_URI"' in script
    assert "secrets.MLFLOW_TRACKING_URI" in (WORKFLOWS / "train-and-deploy.yml").read_text()
    assert "--host 127.0.0.1" in script and "free_port()" in script  # the throw-away server stays on loopback
    uploads = [s for s in steps if s.get("uses", "").startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["if"] == "always()"


def test_train_and_deploy_stops_at_challenger_and_deploys_upon_approval():
    """The human gate: the pipeline job stops at challenger; a deploy job behind a GitHub environment (required
    reviewers) promotes it with `pipeline approve`, naming the reviewer who approved the run."""
    jobs = _load("train-and-deploy.yml")["jobs"]
    pipeline_script = "\n".join(s.get("run", "") for s in jobs["pipeline"]["steps"])
    assert "python -m mlops_helpers.pipeline run" in pipeline_script and "--no-promote" in pipeline_script
    assert jobs["pipeline"]["outputs"]["version"] == "${{ steps.challenger.outputs.version }}"
    deploy = jobs["deploy"]
    assert deploy["needs"] == "pipeline" and deploy["environment"] == "production"
    assert "needs.pipeline.outputs.version != ''" in deploy["if"]  # nothing waits: nothing to approve
    assert "needs.pipeline.outputs.shared == 'true'" in deploy["if"]  # a throw-away registry ended with its job
    assert deploy["permissions"]["actions"] == "read"  # to read who approved the run
    deploy_script = "\n".join(s.get("run", "") for s in deploy["steps"])
    assert "/actions/runs/$GITHUB_RUN_ID/approvals" in deploy_script
    assert "python -m mlops_helpers.pipeline approve" in deploy_script
    for option in ('--version "$VERSION"', '--by "$by"', "--why", '--tracking-uri "$MLFLOW_TRACKING_URI"'):
        assert option in deploy_script
    assert "make setup" in deploy_script


def test_the_makefile_targets_the_workflows_call_exist():
    makefile = (REPO_ROOT / "Makefile").read_text()
    for target in ("setup:", "test:"):
        assert f"\n{target}" in makefile


def _step(workflow: dict, name: str) -> dict:
    """The step called ``name``, in whichever job holds it."""
    found = [step for job in workflow["jobs"].values() for step in job["steps"] if step.get("name") == name]
    assert len(found) == 1, f"expected one step {name!r}, found {len(found)}"
    return found[0]


def _group(pgid: int) -> list[int]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and proc.status() != psutil.STATUS_ZOMBIE:
                members.append(proc.pid)
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return members


def test_the_throw_away_tracking_server_is_stopped_with_its_whole_process_tree(tmp_path):
    """The workflow's own start and stop steps, run as the runner runs them: the server's group (the mlflow CLI,
    uvicorn and its worker) is started in its own session and is gone, port and all, after the stop step."""
    workflow = _load("train-and-deploy.yml")
    start = _step(workflow, "Choose the tracking server")["run"]
    stop = _step(workflow, "Stop the throw-away tracking server")["run"]
    env = {**os.environ, "RUNNER_TEMP": str(tmp_path), "GITHUB_ENV": str(tmp_path / "github-env"),
           "GITHUB_OUTPUT": str(tmp_path / "github-output"), "SHARED_TRACKING_URI": ""}  # fmt: skip
    env.pop("MLFLOW_TRACKING_URI", None)
    started = subprocess.run(["bash", "-eo", "pipefail", "-c", start], cwd=REPO_ROOT, env=env, capture_output=True,
                             text=True, timeout=300)  # fmt: skip
    assert (tmp_path / "mlflow-server.pgid").exists(), started.stdout + started.stderr
    group = int((tmp_path / "mlflow-server.pgid").read_text())
    members = _group(group)
    try:
        log = tmp_path / "mlflow-server.log"
        assert started.returncode == 0, started.stderr[-1500:] + (log.read_text()[-3000:] if log.exists() else "")
        assert (tmp_path / "github-output").read_text() == "shared=false\n"
        uri = (tmp_path / "github-env").read_text().strip().removeprefix("MLFLOW_TRACKING_URI=")
        assert requests.get(f"{uri}/health", timeout=10).status_code == 200
        assert group not in {os.getpgid(os.getpid()), os.getsid(os.getpid())}  # its own group, not the step's
        assert len(members) >= 2, members  # the CLI and uvicorn (stopping the CLI's PID alone left uvicorn serving)
        stopped = subprocess.run(["bash", "-eo", "pipefail", "-c", stop], env=env, capture_output=True, timeout=60)
        assert stopped.returncode == 0
        assert processes.all_exited(members) and not _group(group)
        assert processes.port_is_free(int(uri.rsplit(":", 1)[1]))
    finally:
        for pid in _group(group):
            psutil.Process(pid).kill()


def test_every_test_marked_slow_exists():
    """conftest's SLOW lists name real tests: a renamed test must not drop out of the mark (and into unit-newest)."""
    from conftest import SLOW_MODULES, SLOW_TESTS

    tests = REPO_ROOT / "tests"
    assert all((tests / module).is_file() for module in SLOW_MODULES)
    for entry in SLOW_TESTS:
        module, name = entry.split("::")
        assert f"def {name}(" in (tests / module).read_text(), entry
