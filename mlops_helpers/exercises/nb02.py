"""Notebook 02's exercises, checked against the learner's tracking server's stores (read as files: no server needed)
and, for the allowed hosts, against MLflow's own host check."""

from __future__ import annotations

import configparser
from functools import partial
from pathlib import Path
from typing import Any

from mlops_helpers.exercises import Exercise, NotYet, expect_keys, expect_type

# The Host headers exercise 1 asks about; "127.0.0.1:<port>" is what requests sends when no Host header is set.
HOSTS = ("mlflow.citybikes.internal", "localhost", "attacker.example", "127.0.0.1:<port>")
TEAM_EXPERIMENT, PRIVATE_EXPERIMENT = "citybikes-team", "citybikes-private"


def _client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def _experiment_runs(tracking_uri: str, experiment: str):
    client = _client(tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise NotYet(f"the server's store has no experiment {experiment!r}: log to it first (the lesson's cells)")
    return client, found.experiment_id


def _run_id(answer: Any, what: str) -> str:
    """A run id, given as text, as a Run, or as the JSON of the REST API ({'info': {'run_id': ...}})."""
    if isinstance(answer, dict) and "info" in answer:
        answer = answer["info"].get("run_id", answer["info"])
    answer = getattr(getattr(answer, "info", None), "run_id", answer)
    return expect_type(answer, str, what)


# --- 1. --allowed-hosts


def _allowed_hosts(hosts: Any, statuses: Any) -> str:
    from mlflow.server.security_utils import is_allowed_host_header

    if isinstance(hosts, (list, tuple)):
        hosts = ",".join(map(str, hosts))
    hosts = expect_type(hosts, str, "the --allowed-hosts value you passed")
    allowed = [h.strip() for h in hosts.split(",") if h.strip()]  # as MLflow reads MLFLOW_SERVER_ALLOWED_HOSTS
    expect_keys(statuses, HOSTS, "the status codes by Host header")
    for host in HOSTS:
        code = statuses[host]
        if hasattr(code, "status_code"):
            raise NotYet(f"statuses[{host!r}] is a whole response: answer its .status_code")
        expect_type(code, int, f"the status code for {host!r}")
    if not is_allowed_host_header(allowed, "mlflow.citybikes.internal"):
        raise NotYet(f"--allowed-hosts {hosts!r} refuses 'mlflow.citybikes.internal': name it, as a proxy sends it")
    ports = [h.split(":")[1] for h in allowed if h.startswith("127.0.0.1:") and h.split(":")[1].isdigit()]
    sent = {host: host.replace("<port>", ports[0] if ports else "5000") for host in HOSTS}  # the server's own port
    expected = {host: 200 if is_allowed_host_header(allowed, sent[host]) else 403 for host in HOSTS}
    for host in HOSTS:
        if statuses[host] != expected[host]:
            why = "on your list" if expected[host] == 200 else "not on your list"
            hint = ""
            if host == "localhost" and statuses[host] == 200:
                hint = ": it passed the default list, which --allowed-hosts replaces. Did you ask the restarted server?"
            raise NotYet(f"{host}: you answer {statuses[host]}, but with --allowed-hosts {hosts!r} MLflow answers "
                         f"{expected[host]} ({sent[host]} is {why}){hint}")  # fmt: skip
    loopback = "passes because you named it" if expected["127.0.0.1:<port>"] == 200 else (
        "is refused too: your own client needs it named (127.0.0.1:*)")  # fmt: skip
    return (f"--allowed-hosts replaces the default list (loopback and private addresses): only the names you give "
            f"pass, localhost gets 403 now, and 127.0.0.1:<port> {loopback}")  # fmt: skip


# --- 2. the best run, through the REST API


def _best_run(tracking_uri: str, experiment: str, answer: Any) -> str:
    run_id = _run_id(answer, "the run_id of the best run")
    client, experiment_id = _experiment_runs(tracking_uri, experiment)
    runs = client.search_runs([experiment_id], "metrics.val_rmse >= 0", max_results=10_000)
    if not runs:
        raise NotYet(f"no run with a val_rmse in {experiment!r}: run the lesson's logging cell first")
    rmse = {r.info.run_id: r.data.metrics["val_rmse"] for r in runs}
    names = {r.info.run_id: r.info.run_name for r in runs}
    best = min(rmse.values())
    best_name = next(names[i] for i, v in rmse.items() if v == best)
    if run_id not in rmse:
        if run_id in names.values():
            raise NotYet(f"{run_id!r} is a run's name: answer its run_id (run['info']['run_id'])")
        raise NotYet(f"no run {run_id!r} with a val_rmse in the experiment {experiment!r} of the server's store")
    if rmse[run_id] != best:
        if rmse[run_id] == max(rmse.values()):
            raise NotYet(f"{names[run_id]} has the highest val_rmse ({rmse[run_id]:.2f}): the lowest comes first "
                         "with order_by ['metrics.val_rmse ASC']")  # fmt: skip
        raise NotYet(f"{names[run_id]} has val_rmse {rmse[run_id]:.2f}; the lowest is {best:.2f} ({best_name})")
    return (f"{names[run_id]}, val_rmse {best:.2f}: logged before the restart and still there, since runs live in "
            "the backend store (the database), not in the server process")  # fmt: skip


# --- 3. a second client


def _second_client(tracking_uri: str, experiment: str, answer: Any) -> str:
    from mlflow.exceptions import MlflowException
    from mlflow.tracking.context.default_context import _get_source_name

    run_id = _run_id(answer, "the run_id of the second client's run")
    client, experiment_id = _experiment_runs(tracking_uri, experiment)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise NotYet(f"no run {run_id!r} in the server's store: did the other process log to the server "
                     "(MLFLOW_TRACKING_URI set to its URL)?") from None  # fmt: skip
    if run.info.experiment_id != experiment_id:
        raise NotYet(f"the run {run_id!r} is in another experiment: the other process should set_experiment"
                     f"({experiment!r})")  # fmt: skip
    source = run.data.tags.get("mlflow.source.name")
    if source is None:
        raise NotYet("the run has no source tag: log it with mlflow.start_run in the other process")
    if source == _get_source_name():
        raise NotYet(f"that run was logged from this notebook's own process ({Path(source).name}): log one from a "
                     "separate Python process (subprocess.run([sys.executable, '-c', ...]))")  # fmt: skip
    if run.info.status != "FINISHED":
        raise NotYet(f"the run is {run.info.status}: end it in the other process (mlflow.end_run or a with block)")
    return (f"{run.info.run_name!r} was logged by {Path(source).name}, another process that knew only the server's "
            "URL, and this notebook finds it: one server, many clients")  # fmt: skip


# --- 4. alice on the team server


def _alice_permissions(team_dir: Path):
    """alice's permission on an experiment, as the auth app's user database (its own store) holds it."""
    import warnings

    from mlflow.exceptions import MlflowException

    with warnings.catch_warnings():  # its import warns about starlette, a warning for MLflow's makers
        warnings.simplefilter("ignore")
        from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    users = SqlAlchemyStore()
    users.init_db(f"sqlite:///{team_dir / 'users.db'}")

    def permission(experiment_id: str) -> str | None:
        try:
            return users.get_experiment_permission(experiment_id, "alice").permission
        except MlflowException:  # no grant for her on it
            return None

    return permission


def _team_access(team_dir: Path, answer: Any) -> str:
    from mlflow.exceptions import MlflowException

    expect_keys(answer, ["run", "private"], "your answer")
    run_id = _run_id(answer["run"], "answer['run'], the run_id of alice's run")
    private_status = answer["private"]
    if hasattr(private_status, "status_code"):
        private_status = private_status.status_code
    private_status = expect_type(private_status, int, "answer['private'], the status code alice gets")
    client = _client(f"sqlite:///{team_dir / 'mlflow.db'}")
    team, private = client.get_experiment_by_name(TEAM_EXPERIMENT), client.get_experiment_by_name(PRIVATE_EXPERIMENT)
    if team is None:
        raise NotYet(f"the team server has no experiment {TEAM_EXPERIMENT!r}: run the lesson's team server cells")
    permission = _alice_permissions(team_dir)
    granted = permission(team.experiment_id)
    if granted not in ("EDIT", "MANAGE"):
        raise NotYet(f"alice has {granted or 'no permission'} on {TEAM_EXPERIMENT}: logging needs EDIT (revoke the "
                     "READ grant and grant EDIT, or users.update_user_permission)")  # fmt: skip
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise NotYet(f"no run {run_id!r} on the team server: create it with alice's client") from None
    if run.info.experiment_id != team.experiment_id:
        raise NotYet(f"that run is not in {TEAM_EXPERIMENT}: alice_client.create_run({team.experiment_id!r})")
    if not run.data.metrics:
        raise NotYet("alice's run has no metric: alice_client.log_metric(run_id, 'val_rmse', ...)")
    if private is None:
        raise NotYet(f"the admin has not created {PRIVATE_EXPERIMENT!r} yet: admin_client.create_experiment(...)")
    config = configparser.ConfigParser()
    config.read(team_dir / "basic_auth.ini")
    default = config.get("mlflow", "default_permission", fallback="READ")
    effective = permission(private.experiment_id) or default
    expected = 403 if effective == "NO_PERMISSIONS" else 200
    if private_status != expected:
        if private_status == 401:
            raise NotYet("401 means the request came without credentials: ask as alice (signed_in(*ALICE) or "
                         "auth=ALICE)")  # fmt: skip
        raise NotYet(f"alice's permission on {PRIVATE_EXPERIMENT} is {effective}, so reading it gets {expected}, "
                     f"not {private_status}")  # fmt: skip
    return (f"alice logs in {TEAM_EXPERIMENT} with {granted}; {PRIVATE_EXPERIMENT} gives her {expected}: a grant is "
            f"per experiment, and where nobody granted anything default_permission ({default}) applies")  # fmt: skip


def notebook_02(tracking_uri: str, experiment: str, team_dir: str | Path) -> tuple[Exercise, ...]:
    """Notebook 02's exercises: ``tracking_uri`` is the server's backend store (its SQLite file, read directly, or a
    shared server's URL), ``team_dir`` the folder of the basic-auth team server's stores."""
    team_dir = Path(team_dir)
    return (
        Exercise("02", 1, _allowed_hosts, [
            "Start the server again with `[*command, '--allowed-hosts', hosts]`: same stores, one more flag.",
            "Send `requests.get(url, headers={'Host': host})` per host, and once with no Host header (127.0.0.1).",
            "The flag replaces the default list: `'mlflow.citybikes.internal,127.0.0.1:*'` keeps your client in.",
        ]),
        Exercise("02", 2, partial(_best_run, tracking_uri, experiment), [
            "`requests.get(f'{url}/api/2.0/mlflow/experiments/get-by-name', params=...)` gives the experiment_id.",
            "`requests.post(f'{url}/api/2.0/mlflow/runs/search', json={'experiment_ids': [...], 'order_by': [...]})`.",
            "`'order_by': ['metrics.val_rmse ASC']`, then `['runs'][0]['info']['run_id']`.",
        ]),
        Exercise("02", 3, partial(_second_client, tracking_uri, experiment), [
            "`subprocess.run([sys.executable, '-c', code], env=processes.venv_env({'MLFLOW_TRACKING_URI': url}))`.",
            "In `code`: `mlflow.set_experiment(...)`, `mlflow.start_run(run_name=...)`, a metric, `mlflow.end_run()`.",
            "Then find it here by its name with `runs/search` (or `mlflow.search_runs`) and answer its run_id.",
        ]),
        Exercise("02", 4, partial(_team_access, team_dir), [
            "As the admin: `users.revoke_user_permission(...)`, then `users.grant_user_permission(..., 'EDIT')`.",
            "As alice: `alice_client.create_run(team_experiment)`, `log_metric`, `set_terminated`.",
            "`alice_client.get_experiment(private)` raises; `refused.get_http_status_code()` is the status.",
        ]),
    )  # fmt: skip
