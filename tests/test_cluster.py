"""The cluster track, checked offline: the workflows validate, their shell and the cluster scripts pass shellcheck,
the files say what they are, and CI keeps the executed notebooks where ``make test`` writes them.

The cluster itself is not run here (no Docker, no Kubernetes): ``.github/workflows/cluster.yml`` runs it on a kind
cluster in a hosted runner, and ``cluster/README.md`` says so. The generated manifests are validated against the real
CRDs in ``tests/test_manifests.py``; the serving runtime is proven by ``make runtime-proof``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mlops_helpers import REPO_ROOT

CLUSTER = REPO_ROOT / "cluster"
WORKFLOWS = REPO_ROOT / ".github" / "workflows"
CHECK = Path(sys.executable).parent / "check-jsonschema"
SCRIPTS = [*sorted(CLUSTER.glob("*.sh")), REPO_ROOT / ".ci" / "run"]


def _shellcheck() -> str:
    found = shutil.which("shellcheck")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("shellcheck is missing: `make system-deps` installs it (.ci/run runs it)")
        pytest.skip("shellcheck is not installed here (`make system-deps` installs it; CI always has it)")
    return found


def _workflow(name: str) -> dict:
    return yaml.safe_load((WORKFLOWS / name).read_text())


def test_the_cluster_workflow_matches_githubs_schema_and_runs_only_by_hand():
    done = subprocess.run(
        [str(CHECK), "--builtin-schema", "vendor.github-workflows", str(WORKFLOWS / "cluster.yml")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    workflow = _workflow("cluster.yml")
    assert set(workflow[True]) == {"workflow_dispatch"}  # PyYAML reads the key `on` as True
    steps = workflow["jobs"]["kind"]["steps"]
    runs = [s.get("run", "") for s in steps]
    assert runs.index("cluster/images.sh") < runs.index("cluster/install.sh") < runs.index("cluster/release.sh")
    kind = next(s for s in steps if s.get("uses", "").startswith("helm/kind-action"))
    assert kind["with"]["config"] == "cluster/kind.yaml"


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_the_scripts_pass_shellcheck(script):
    done = subprocess.run([_shellcheck(), "--shell=bash", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
    assert os.access(script, os.X_OK), f"{script.name} is not executable"


@pytest.mark.parametrize("name", ["ci.yml", "cluster.yml"])
def test_the_workflows_run_blocks_pass_shellcheck(name, tmp_path):
    """Each `run:` block as GitHub runs it (bash -e); `${{ ... }}` expressions stand for a word."""
    checker = _shellcheck()
    blocks = [s["run"] for job in _workflow(name)["jobs"].values() for s in job["steps"] if "run" in s]
    assert blocks
    for i, block in enumerate(blocks):
        script = tmp_path / f"{i}.sh"
        script.write_text("#!/usr/bin/env bash\nset -e\n" + re.sub(r"\$\{\{[^}]*\}\}", "EXPRESSION", block))
        done = subprocess.run([checker, str(script)], capture_output=True, text=True)
        assert done.returncode == 0, f"{name} step {i}:\n{block}\n{done.stdout}"


def test_shellcheck_finds_what_it_should(tmp_path):
    script = tmp_path / "bad.sh"
    script.write_text("#!/usr/bin/env bash\nrm -rf $1/*\n")  # unquoted: the classic
    assert subprocess.run([_shellcheck(), str(script)], capture_output=True).returncode != 0


def test_the_kind_cluster_and_the_mlflow_manifests():
    kind = yaml.safe_load((CLUSTER / "kind.yaml").read_text())
    assert (kind["kind"], kind["apiVersion"], kind["name"]) == ("Cluster", "kind.x-k8s.io/v1alpha4", "mlops-course")
    documents = list(yaml.safe_load_all((CLUSTER / "mlflow.yaml").read_text()))
    kinds = {(d["kind"], d["metadata"]["name"]) for d in documents}
    assert {("Deployment", "postgres"), ("Deployment", "minio"), ("Deployment", "mlflow")} <= kinds
    assert {("ServiceAccount", "models-reader"), ("Secret", "minio-s3")} <= kinds
    mlflow = next(d for d in documents if d["kind"] == "Deployment" and d["metadata"]["name"] == "mlflow")
    (container,) = mlflow["spec"]["template"]["spec"]["containers"]
    command = " ".join(container["args"])
    assert container["image"].endswith("v3.17.2")  # the course's MLflow
    assert '--backend-store-uri "postgresql://' in command and "--artifacts-destination s3://" in command
    release = (CLUSTER / "release.py").read_text()
    assert 'SERVICE_ACCOUNT = "models-reader"' in release


def test_the_readme_says_plainly_that_this_path_has_not_run_here():
    readme = (CLUSTER / "README.md").read_text()
    assert "**This path has not run on the course's machines.**" in readme
    assert "has not run" in (REPO_ROOT / "README.md").read_text()


def test_a_failed_ci_run_keeps_the_notebooks_make_test_executed():
    """make test runs nbval and then the re-run (student edition, renamed model) in workspace/nbval, whose runner keeps
    each executed copy in workspace/nbval/executed/: the upload on failure names that folder, not workspace/headless."""
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "COURSE_WORKSPACE=$(CURDIR)/workspace/nbval" in makefile
    rerun = (REPO_ROOT / "tests" / "notebook_runs" / "test_rerun.py").read_text()
    assert 'REPO_ROOT / "workspace" / "nbval"' in rerun and "workspace=RERUN_WORKSPACE" in rerun
    test = _workflow("ci.yml")["jobs"]["test"]
    upload = next(s for s in test["steps"] if s.get("uses", "").startswith("actions/upload-artifact"))
    paths = upload["with"]["path"].split()
    assert upload["if"] == "failure()"
    assert "workspace/nbval/executed/" in paths
    assert not any("headless" in p or "params" in p for p in paths)


def test_ci_runs_the_runtime_proof_once_beside_the_tests():
    jobs = _workflow("ci.yml")["jobs"]
    assert any(s.get("run", "").startswith("make runtime-proof") for s in jobs["runtime-proof"]["steps"])
    assert not any("runtime-proof" in s.get("run", "") for s in jobs["test"]["steps"])
    ci_run = (REPO_ROOT / ".ci" / "run").read_text().splitlines()
    # the venv is made in the background (`make runtime-venv ... > log &`), started before make test
    venv = next(i for i, line in enumerate(ci_run) if line.strip().startswith("make runtime-venv"))
    background = next(i for i, line in enumerate(ci_run) if i >= venv and line.rstrip().endswith("&"))
    assert all(not line.startswith("make ") for line in ci_run[venv:background]), (
        "make runtime-venv runs in the background"
    )
    test = next(i for i, line in enumerate(ci_run) if line.startswith("make test"))
    proof = [i for i, line in enumerate(ci_run) if line.startswith("make runtime-proof")]
    assert venv <= background < test < proof[0] and len(proof) == 1, (
        "the venv installs beside make test, the proof runs once after"
    )
