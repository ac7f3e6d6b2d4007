"""Notebook 02's checks: each says "not yet" on the empty answer, names what is wrong in a typical wrong one, and
passes the answer computed as the solution does, on a real server's stores (one `mlflow server`, about 10 s)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import mlflow
import pytest
import requests
from exercise_checks import not_yet, passes

from mlops_helpers import exercises, processes

EXPERIMENT = "citybikes-server"
# The auth app's user database migrates with alembic, which warns about its own configuration.
pytestmark = pytest.mark.filterwarnings("ignore:No path_separator found:DeprecationWarning")


@pytest.fixture(scope="module")
def server_store(tmp_path_factory, module_tracking_env):
    """The server's store with notebook 02's runs: the lesson's, a worse one, and a second client's."""
    root = tmp_path_factory.mktemp("nb02")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    (root / "artifacts").mkdir()
    client = mlflow.MlflowClient(uri)
    experiment_id = client.create_experiment(EXPERIMENT, artifact_location=str(root / "artifacts"))
    runs = {}
    for name, rmse in (("boosting-over-http", 32.9), ("forest-depth-4", 61.0), ("knn-5", 45.0)):
        run = client.create_run(experiment_id, run_name=name)
        client.log_metric(run.info.run_id, "val_rmse", rmse)
        client.set_terminated(run.info.run_id)
        runs[name] = run.info.run_id
    return root, uri, runs


@pytest.fixture(scope="module")
def restarted(server_store):
    """The solution's restarted server, on the same store, with --allowed-hosts: its statuses and its best run."""
    root, uri, _ = server_store
    hosts = "mlflow.citybikes.internal,127.0.0.1:*"
    command = ["mlflow", "server", "--backend-store-uri", uri, "--artifacts-destination", str(root / "artifacts"),
               "--host", "{host}", "--port", "{port}", "--workers", "1", "--allowed-hosts", hosts]  # fmt: skip
    with processes.start(command, name="nb02-exercise-test", health_path="/health", log_dir=root / "logs",
                         env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}, timeout=180) as server:  # fmt: skip
        search = f"{server.url}/api/2.0/mlflow/experiments/search?max_results=1"
        statuses = {
            host: requests.get(
                search, headers={"Host": host} if host != "127.0.0.1:<port>" else {}, timeout=5
            ).status_code
            for host in ("mlflow.citybikes.internal", "localhost", "attacker.example", "127.0.0.1:<port>")
        }
        api = f"{server.url}/api/2.0/mlflow"
        found = requests.get(f"{api}/experiments/get-by-name", params={"experiment_name": EXPERIMENT}, timeout=5)
        experiment_id = found.json()["experiment"]["experiment_id"]
        order = {"experiment_ids": [experiment_id], "order_by": ["metrics.val_rmse ASC"]}
        ordered = requests.post(f"{api}/runs/search", json=order, timeout=5).json()
        # a second client: another process, configured by the environment variable alone
        code = (
            f"import mlflow; mlflow.set_experiment({EXPERIMENT!r}); r = mlflow.start_run(run_name='second-client'); "
            "mlflow.log_metric('val_rmse', 99.0); mlflow.end_run(); print(r.info.run_id)"
        )
        other = subprocess.run(
            [sys.executable, "-c", code],
            env=processes.venv_env({"MLFLOW_TRACKING_URI": server.url}),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert not server.alive and processes.port_is_free(server.port)
    assert other.returncode == 0, other.stderr
    return hosts, statuses, ordered["runs"], other.stdout.strip()


def test_allowed_hosts(restarted):
    hosts, statuses, _, _ = restarted
    q1 = exercises.notebook_02("sqlite:///unused.db", EXPERIMENT, "unused")[0]
    not_yet(q1.check(hosts, ...), "no answer")
    not_yet(q1.check(hosts, {"localhost": 403}), "lacks the key(s)", "mlflow.citybikes.internal")
    not_yet(q1.check("127.0.0.1:*", statuses), "refuses 'mlflow.citybikes.internal'")
    # the default list's answers: localhost passed there, not here
    not_yet(
        q1.check(hosts, {**statuses, "localhost": 200}), "localhost", "default list, which --allowed-hosts replaces"
    )
    not_yet(q1.check(hosts, {**statuses, "127.0.0.1:<port>": 403}), "127.0.0.1:<port>: you answer 403", "answers 200")
    not_yet(q1.check(hosts, {**statuses, "localhost": "403"}), "should be an int")
    passes(q1.check(hosts, statuses))
    # a list without loopback: 127.0.0.1:<port> is refused too, and the check says why
    verdict = q1.check("mlflow.citybikes.internal", {**statuses, "127.0.0.1:<port>": 403})
    passes(verdict)
    assert "your own client needs it named" in verdict.message


def test_best_run(server_store, restarted):
    _, uri, runs = server_store
    _, _, ordered, _ = restarted
    q2 = exercises.notebook_02(uri, EXPERIMENT, "unused")[1]
    not_yet(q2.check(None), "no answer")
    not_yet(q2.check("boosting-over-http"), "a run's name: answer its run_id")
    not_yet(q2.check(runs["knn-5"]), "knn-5 has val_rmse 45.00; the lowest is 32.90 (boosting-over-http)")
    not_yet(q2.check(restarted[3]), "second-client has the highest val_rmse", "ASC")  # ordered DESC by mistake
    not_yet(q2.check(42), "should be a str")
    not_yet(exercises.notebook_02(uri, "no-such", "unused")[1].check("x"), "no experiment 'no-such'")
    passes(q2.check(ordered[0]["info"]["run_id"]))
    passes(q2.check(ordered[0]))  # the run's JSON, as runs/search gives it


def test_second_client(server_store, restarted):
    _, uri, runs = server_store
    _, _, _, other_run_id = restarted
    q3 = exercises.notebook_02(uri, EXPERIMENT, "unused")[2]
    not_yet(q3.check(...), "no answer")
    not_yet(q3.check(runs["knn-5"]), "no source tag")  # made with MlflowClient.create_run: no source
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(EXPERIMENT)
    with mlflow.start_run(run_name="same-process") as same:  # this process: the source is our own
        mlflow.log_metric("val_rmse", 70.0)
    not_yet(q3.check(same.info.run_id), "this notebook's own process")
    not_yet(q3.check("0" * 32), "no run", "MLFLOW_TRACKING_URI")
    passes(q3.check(other_run_id))


@pytest.fixture
def team(tmp_path):
    """The team server's stores as notebook 02 leaves them: alice granted READ on citybikes-team."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore
    (tmp_path / "basic_auth.ini").write_text("[mlflow]\ndefault_permission = NO_PERMISSIONS\n")
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    team_id = client.create_experiment("citybikes-team", artifact_location=str(tmp_path / "artifacts"))
    users = SqlAlchemyStore()
    users.init_db(f"sqlite:///{tmp_path / 'users.db'}")
    users.create_user("alice", "a-long-enough-password")
    users.create_experiment_permission(team_id, "alice", "READ")
    return tmp_path, client, users, team_id


def test_team_access(team):
    team_dir, client, users, team_id = team
    q4 = exercises.notebook_02("sqlite:///unused.db", EXPERIMENT, team_dir)[3]
    run = client.create_run(team_id, run_name="alice-edit")
    not_yet(q4.check(...), "no answer")
    not_yet(q4.check({"run": run.info.run_id}), "lacks the key(s) ['private']")
    not_yet(q4.check({"run": run.info.run_id, "private": 403}), "alice has READ on citybikes-team", "EDIT")
    users.update_experiment_permission(team_id, "alice", "EDIT")
    not_yet(q4.check({"run": run.info.run_id, "private": 403}), "no metric")
    client.log_metric(run.info.run_id, "val_rmse", 40.0)
    not_yet(q4.check({"run": run.info.run_id, "private": 403}), "has not created 'citybikes-private'")
    client.create_experiment("citybikes-private", artifact_location=str(team_dir / "artifacts"))
    not_yet(q4.check({"run": run.info.run_id, "private": 401}), "401 means the request came without credentials")
    not_yet(q4.check({"run": run.info.run_id, "private": 200}), "NO_PERMISSIONS, so reading it gets 403")
    passes(q4.check({"run": run.info.run_id, "private": 403}))
