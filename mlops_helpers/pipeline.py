"""The CI/CD pipeline: validate -> train -> evaluate (gates) -> register -> integration test -> promote (notebook 05).

Command line (the same in a notebook, in GitHub Actions or in Jenkins)::

    python -m mlops_helpers.pipeline run --data new.csv [--window 2011-01-01:2011-06-01] [--tracking-uri URI] ...
    python -m mlops_helpers.pipeline rollback [--model-name NAME] [--reason TEXT]
    python -m mlops_helpers.pipeline status [--model-name NAME]

Each stage prints a one-line verdict and has its own exit code (:data:`EXIT_CODES`), so a CI system shows at a glance
where a run stopped. Every refusal leaves the registry exactly as it was: the same champion, and no half-registered
version (a version registered before a later stage failed is deleted again; its model stays logged on the run).

The stage functions are plain functions over data frames and URIs; the Kubeflow pipeline of notebook 08 reuses them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mlops_helpers import data, models
from mlops_helpers.checkpoints import MODEL_NAME
from mlops_helpers.models import DEFAULT_PARAMS
from mlops_helpers.validation import BIKES_CONTRACT, DataContract, ValidationReport

EXPERIMENT_NAME = "citybikes-pipeline"
CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous-champion"

#: One exit code per stage, so CI shows where a run stopped.
EXIT_CODES = {
    "promoted": 0,
    "usage": 2,
    "validate": 10,
    "train": 20,
    "evaluate": 30,
    "register": 40,
    "integration": 50,
    "promote": 60,
    "rollback": 70,
}


class StageRefused(Exception):
    """A stage refused to go on. Carries the stage name, its one-line verdict and details for the report."""

    def __init__(self, stage: str, verdict: str, details: dict | None = None) -> None:
        super().__init__(verdict)
        self.stage, self.verdict, self.details = stage, verdict, details or {}


@dataclass
class PipelineConfig:
    """Everything one pipeline run needs. Defaults are the course's."""

    data: Path
    window: tuple[str, str] | None = None
    tracking_uri: str | None = None
    model_name: str = MODEL_NAME
    experiment: str = EXPERIMENT_NAME
    family: str = "gradient_boosting"
    params: dict[str, Any] = field(default_factory=dict)
    holdout_days: int = 14
    max_rmse: float = 80.0
    min_improvement: float = 0.05
    integration_test: bool = True
    #: False stops after the integration test: the version stays ``challenger`` for a canary release (notebook 09).
    promote: bool = True
    reason: str = "pipeline run"

    def model_params(self) -> dict[str, Any]:
        return {**DEFAULT_PARAMS.get(self.family, {}), **self.params}


@dataclass
class StageResult:
    stage: str
    passed: bool
    verdict: str
    seconds: float
    details: dict = field(default_factory=dict)


@dataclass
class PipelineResult:
    """What a run did: each stage's verdict, the MLflow run, and the version registered and promoted (if any)."""

    stages: list[StageResult] = field(default_factory=list)
    run_id: str | None = None
    version: str | None = None
    promoted: bool = False

    @property
    def failed_stage(self) -> str | None:
        return next((s.stage for s in self.stages if not s.passed), None)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.failed_stage] if self.failed_stage else 0

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"stage": s.stage, "passed": s.passed, "verdict": s.verdict} for s in self.stages])


# ---------------------------------------------------------------------------------------------------------- stages
def validate_data(
    path: str | Path, window: tuple[str, str] | None = None, contract: DataContract = BIKES_CONTRACT
) -> tuple[pd.DataFrame | None, ValidationReport]:
    """Stage 1: check the batch against the data contract; the typed frame (None when refused) and the report."""
    raw = pd.read_csv(path)
    report = contract.validate(raw, window)
    if not report.ok:
        return None, report
    return data.prepare_bikes(raw, source=str(path)), report


def split_holdout(frame: pd.DataFrame, holdout_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last ``holdout_days`` days of the batch are held out for evaluation; the rest trains."""
    cut = frame.index.max().normalize() - pd.Timedelta(days=holdout_days - 1)
    train, holdout = frame.loc[frame.index < cut], frame.loc[frame.index >= cut]
    if len(train) < 24 * 7 or len(holdout) < 24:
        raise StageRefused("train", f"too little data: {len(train)} hours to train, {len(holdout)} to evaluate")
    return train, holdout


def build_model(family: str, params: dict[str, Any]):
    """An unfitted scikit-learn model of ``family`` with ``params`` (seeded); an unknown family refuses training."""
    try:
        return models.build_model(family, params)
    except ValueError as exc:
        raise StageRefused("train", str(exc)) from None


def rmse(model, frame: pd.DataFrame) -> float:
    """Root mean squared error of ``model`` (anything with ``predict``) on ``frame``."""
    from sklearn.metrics import root_mean_squared_error

    X, y = data.xy(frame)
    return float(root_mean_squared_error(y, model.predict(X)))


@dataclass
class Evaluation:
    candidate_rmse: float
    champion_rmse: float | None
    max_rmse: float
    min_improvement: float
    reasons: list[str]

    @property
    def passed(self) -> bool:
        return not self.reasons

    def verdict(self) -> str:
        against = "no champion yet" if self.champion_rmse is None else f"champion {self.champion_rmse:.2f}"
        head = f"candidate RMSE {self.candidate_rmse:.2f} on the holdout ({against})"
        return f"{head}: passed" if self.passed else f"{head}: REFUSED, {'; '.join(self.reasons)}"


def evaluate(candidate, champion, holdout: pd.DataFrame, max_rmse: float, min_improvement: float) -> Evaluation:
    """Stage 3: the candidate must be under ``max_rmse`` and beat the champion by ``min_improvement`` (relative)."""
    candidate_rmse = rmse(candidate, holdout)
    champion_rmse = rmse(champion, holdout) if champion is not None else None
    reasons = []
    if candidate_rmse > max_rmse:
        reasons.append(f"RMSE {candidate_rmse:.2f} is above the threshold {max_rmse:.2f}")
    if champion_rmse is not None and candidate_rmse > champion_rmse * (1 - min_improvement):
        reasons.append(
            f"not better than the champion by {min_improvement:.0%} "
            f"(needs RMSE <= {champion_rmse * (1 - min_improvement):.2f})"
        )
    return Evaluation(candidate_rmse, champion_rmse, max_rmse, min_improvement, reasons)


def registry_state(client, name: str) -> dict:
    """The registry facts a refusal must leave unchanged: the aliases and the set of versions."""
    from mlflow.exceptions import MlflowException

    try:
        aliases = dict(client.get_registered_model(name).aliases)
    except MlflowException:
        return {"exists": False, "aliases": {}, "versions": []}
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{name}'"))
    return {"exists": True, "aliases": {k: str(v) for k, v in aliases.items()}, "versions": versions}


def load_champion(name: str):
    """The current champion as a pyfunc model, or None when there is none yet."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        version = mlflow.MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None, None
    return mlflow.pyfunc.load_model(f"models:/{name}/{version.version}"), version


#: Registered-model tags ``audit.00001``, ``audit.00002``...: one JSON event per alias move, never rewritten.
AUDIT_PREFIX = "audit."


def _actor(actor: str | None) -> str:
    return actor or os.environ.get("GITHUB_ACTOR") or os.environ.get("USER") or "pipeline"


def record_event(
    client,
    name: str,
    action: str,
    alias: str,
    version: str | None,
    previous: str | None,
    reason: str,
    actor: str | None = None,
) -> dict:
    """Append one alias event to ``name``'s audit trail (a registered-model tag ``audit.NNNNN``) and return it.

    ``action`` is ``"set"`` or ``"delete"``; ``previous`` is the version the alias pointed at before (or None).
    The tags are append-only: a new event takes the next number, earlier ones are never changed.
    """
    seq = max((e["seq"] for e in audit_events(client, name)), default=0) + 1
    event = {
        "seq": seq,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "by": _actor(actor),
        "action": action,
        "alias": alias,
        "version": None if version is None else str(version),
        "from": None if previous is None else str(previous),
        "why": reason,
    }
    client.set_registered_model_tag(name, f"{AUDIT_PREFIX}{seq:05d}", json.dumps(event))
    return event


def audit_events(client, name: str) -> list[dict]:
    """Every recorded alias event of ``name``, oldest first (see :func:`record_event`)."""
    tags = client.get_registered_model(name).tags
    events = [json.loads(v) for k, v in tags.items() if k.startswith(AUDIT_PREFIX) and k[len(AUDIT_PREFIX) :].isdigit()]
    return sorted(events, key=lambda e: e["seq"])


def move_alias(client, name: str, alias: str, version: str, reason: str, actor: str | None = None) -> dict:
    """Point ``alias`` at ``version`` and record who moved it, when and why.

    Two records: the version's tag ``alias.<alias>`` (the latest move of that alias to this version) and an event
    appended to the registered model's audit trail (:func:`audit_events`), which keeps every move.
    """
    previous = registry_state(client, name)["aliases"].get(alias)
    client.set_registered_model_alias(name, alias, version)
    event = record_event(client, name, "set", alias, str(version), previous, reason, actor)
    stamp = {"at": event["at"], "by": event["by"], "why": reason}
    client.set_model_version_tag(name, version, f"alias.{alias}", json.dumps(stamp))
    return event


def remove_alias(client, name: str, alias: str, reason: str, actor: str | None = None) -> dict | None:
    """Delete ``alias`` (if it exists) and record it in the audit trail; the event, or None if there was no alias."""
    previous = registry_state(client, name)["aliases"].get(alias)
    if previous is None:
        return None
    client.delete_registered_model_alias(name, alias)
    return record_event(client, name, "delete", alias, None, previous, reason, actor)


def promote(client, name: str, version: str, reason: str) -> dict:
    """Stage 6: ``champion`` -> ``version``; the old champion stays reachable as ``previous-champion``."""
    before = registry_state(client, name)["aliases"]
    old = before.get(CHAMPION)
    if old and old != str(version):
        move_alias(client, name, PREVIOUS, old, f"replaced by version {version}: {reason}")
    move_alias(client, name, CHAMPION, str(version), reason)
    if before.get(CHALLENGER) == str(version):
        remove_alias(client, name, CHALLENGER, f"promoted to {CHAMPION}: {reason}")
    return {"champion": str(version), "previous-champion": old}


def rollback(client, name: str, reason: str = "rollback") -> dict:
    """Move ``champion`` back to ``previous-champion`` (and the demoted one to ``previous-champion``, so a second
    rollback undoes the first). Nothing is deleted."""
    aliases = registry_state(client, name)["aliases"]
    if PREVIOUS not in aliases:
        raise StageRefused("rollback", f"{name} has no {PREVIOUS!r} alias: nothing to roll back to")
    current, previous = aliases.get(CHAMPION), aliases[PREVIOUS]
    move_alias(client, name, CHAMPION, previous, reason)
    if current:
        move_alias(client, name, PREVIOUS, current, f"rolled back: {reason}")
    return {"champion": previous, "previous-champion": current}


def restore_registry(client, name: str, state: dict, reason: str = "restored after a refusal") -> None:
    """Put aliases and versions back as in ``state`` (after a refusal that came after registration).

    Alias changes are recorded in the audit trail like any other move, so the trail explains the registry.
    """
    now = registry_state(client, name)
    for alias, version in now["aliases"].items():
        if state["aliases"].get(alias) != version:
            remove_alias(client, name, alias, reason)
    for version in set(now["versions"]) - set(state["versions"]):
        client.delete_model_version(name, str(version))
    for alias, version in state["aliases"].items():
        if registry_state(client, name)["aliases"].get(alias) != version:
            move_alias(client, name, alias, version, reason)
    after = registry_state(client, name)
    if not state["exists"] and after["exists"] and not after["versions"]:
        client.delete_registered_model(name)


def integration_test(model_uri: str, example: pd.DataFrame, expected, log_path: Path) -> list[str]:
    """Stage 5: serve ``model_uri`` with the course's prediction service on loopback and check real answers.

    Returns the checks that failed (empty: passed). The service is always stopped, also when a check raises.
    """
    import requests

    from mlops_helpers import processes

    failed: list[str] = []
    command = [sys.executable, "-m", "mlops_helpers.serving", "--model", model_uri, "--port", "{port}"]
    command += ["--log", str(log_path)]
    import mlflow

    # The service must read the registry this run writes to (a tracking server in CI, the workspace locally).
    env = {"MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(), "MLFLOW_REGISTRY_URI": mlflow.get_registry_uri()}
    service = processes.start(command, name="pipeline-integration", health_path="/health", timeout=90, env=env)
    with service, requests.Session() as http:
        health = http.get(f"{service.url}/health", timeout=10).json()
        if str(health.get("version")) != model_uri.rsplit("/", 1)[-1]:
            failed.append(f"/health reports version {health.get('version')}, expected {model_uri}")
        records = json.loads(example.to_json(orient="records"))
        answer = http.post(f"{service.url}/predict", json={"records": records}, timeout=10)
        if answer.status_code != 200:
            failed.append(f"the input example got HTTP {answer.status_code}: {answer.text[:200]}")
        else:
            got = pd.Series(answer.json()["predictions"], dtype="float64")
            if not (got - pd.Series(list(expected), dtype="float64")).abs().lt(1e-6).all():
                failed.append("the service's predictions differ from the model's")
        bad_requests = {
            "a missing column": {k: v for k, v in records[0].items() if k != "temp"},
            "a wrong type": {**records[0], "hr": "noon"},
            "a bare list": records,
        }
        for what, body in bad_requests.items():
            status = http.post(f"{service.url}/predict", json=body, timeout=10).status_code
            if not 400 <= status < 500:
                failed.append(f"{what} got HTTP {status}, expected a 4xx refusal")
        if http.get(f"{service.url}/health", timeout=10).status_code != 200:
            failed.append("the service stopped answering after bad requests")
    return failed


# ------------------------------------------------------------------------------------------------------- the run
def _tracking(config: PipelineConfig):
    import mlflow

    from mlops_helpers import workspace

    if config.tracking_uri:
        workspace.quiet()
        mlflow.set_tracking_uri(config.tracking_uri)
        mlflow.set_registry_uri(config.tracking_uri)
        ws = workspace.Workspace(workspace.default_root())
        ws.root.mkdir(parents=True, exist_ok=True)
        if mlflow.get_experiment_by_name(config.experiment) is None:
            mlflow.create_experiment(config.experiment)
    else:
        ws = workspace.setup(experiment=config.experiment)
    mlflow.set_experiment(config.experiment)
    return ws


def run_pipeline(config: PipelineConfig, echo=print) -> PipelineResult:
    """Run every stage in order, stop at the first refusal, and leave the registry as it was when refusing."""
    import mlflow

    ws = _tracking(config)
    client = mlflow.MlflowClient()
    result = PipelineResult()
    state_before = registry_state(client, config.model_name)
    reports = ws.root / "pipeline"
    reports.mkdir(parents=True, exist_ok=True)

    def stage(name: str, started: float, verdict: str, passed: bool = True, **details) -> None:
        item = StageResult(name, passed, verdict, round(time.perf_counter() - started, 2), details)
        result.stages.append(item)
        mlflow.set_tag(f"stage.{len(result.stages)}.{name}", "passed" if passed else "refused")
        echo(f"[{len(result.stages)}/6] {name:<11} {'ok     ' if passed else 'REFUSED'} {verdict}")

    with mlflow.start_run(run_name=f"pipeline-{config.family}") as run:
        result.run_id = run.info.run_id
        mlflow.set_tags({"pipeline.data": str(config.data), "pipeline.reason": config.reason})
        try:
            # 1. validate
            started = time.perf_counter()
            frame, report = validate_data(config.data, config.window)
            mlflow.log_dict(report.to_dict(), "reports/validation.json")
            (reports / "validation.json").write_text(json.dumps(report.to_dict(), indent=1))
            if frame is None:
                raise StageRefused("validate", report.verdict(), report.to_dict())
            mlflow.set_tag("pipeline.data_sha256", data.sha256(config.data))  # the file's identity, for lineage (10)
            stage("validate", started, report.verdict())

            # 2. train
            started = time.perf_counter()
            train, holdout = split_holdout(frame, config.holdout_days)
            params = config.model_params()
            model = build_model(config.family, params)
            X_train, y_train = data.xy(train)
            model.fit(X_train, y_train)
            X_hold, _ = data.xy(holdout)
            source = str(Path(config.data).resolve())
            mlflow.log_params({"family": config.family, **params, "holdout_days": config.holdout_days})
            for context, part in (("training", train), ("evaluation", holdout)):
                dataset = mlflow.data.from_pandas(
                    part.reset_index(), source=source, name=f"pipeline-{context}", targets=data.TARGET
                )
                mlflow.log_input(dataset, context=context)
            info = models.log_sklearn_model(model, X_hold)
            train_rmse = rmse(model, train)
            mlflow.log_metric("train_rmse", train_rmse)
            stage("train", started, f"{config.family} on {len(train)} hours, train RMSE {train_rmse:.2f}")

            # 3. evaluate against the threshold and the champion, on the same held-out hours
            started = time.perf_counter()
            champion, champion_version = load_champion(config.model_name)
            evaluation = evaluate(model, champion, holdout, config.max_rmse, config.min_improvement)
            mlflow.log_metric("holdout_rmse", evaluation.candidate_rmse)
            if evaluation.champion_rmse is not None:
                mlflow.log_metric("champion_holdout_rmse", evaluation.champion_rmse)
                mlflow.set_tag("pipeline.champion_version", champion_version.version)
            mlflow.log_dict(asdict(evaluation), "reports/evaluation.json")
            if not evaluation.passed:
                raise StageRefused("evaluate", evaluation.verdict(), asdict(evaluation))
            stage("evaluate", started, evaluation.verdict())

            # 4. register and mark as challenger
            started = time.perf_counter()
            version = mlflow.register_model(info.model_uri, config.model_name, tags={"pipeline_run": run.info.run_id})
            result.version = str(version.version)
            move_alias(client, config.model_name, CHALLENGER, result.version, config.reason)
            stage("register", started, f"version {result.version} registered as {CHALLENGER!r}")

            # 5. integration test against the served challenger
            started = time.perf_counter()
            if config.integration_test:
                log_path = reports / f"integration-v{result.version}.jsonl"
                uri = f"models:/{config.model_name}/{result.version}"
                failures = integration_test(uri, X_hold.head(3), model.predict(X_hold.head(3)), log_path)
                if failures:
                    raise StageRefused("integration", "; ".join(failures), {"failures": failures})
                stage("integration", started, "served on loopback: health, example and 3 bad requests answered right")
            else:
                stage("integration", started, "skipped (--no-integration-test)")

            # 6. promote (or leave the challenger for a canary release)
            started = time.perf_counter()
            if config.promote:
                moved = promote(client, config.model_name, result.version, config.reason)
                result.promoted = True
                previous = moved["previous-champion"]
                kept = f" (previous-champion -> version {previous})" if previous else ""
                stage("promote", started, f"champion -> version {result.version}{kept}")
            else:
                stage("promote", started, f"skipped (--no-promote): version {result.version} stays {CHALLENGER!r}")
        except StageRefused as refusal:
            stage(refusal.stage, time.perf_counter(), refusal.verdict, passed=False, **refusal.details)
            restore_registry(client, config.model_name, state_before, f"restored: refused at {refusal.stage}")
            result.version = None
        except Exception as exc:  # an unexpected failure is a refusal of the stage it happened in, never a half state
            failed = ["validate", "train", "evaluate", "register", "integration", "promote"][len(result.stages)]
            stage(failed, time.perf_counter(), f"{type(exc).__name__}: {exc}", passed=False)
            restore_registry(client, config.model_name, state_before, f"restored: {failed} failed")
            result.version = None
        mlflow.set_tags({"pipeline.exit_code": str(result.exit_code), "pipeline.promoted": str(result.promoted)})
    return result


# ------------------------------------------------------------------------------------------------- command line
def _window(text: str) -> tuple[str, str]:
    start, sep, end = text.partition(":")
    if not sep or not start or not end:
        raise argparse.ArgumentTypeError(f"--window takes START:END, e.g. 2011-01-01:2011-06-01, not {text!r}")
    try:
        if pd.Timestamp(start) >= pd.Timestamp(end):
            raise argparse.ArgumentTypeError(f"--window start {start} must be before its end {end}")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--window: {exc}") from None
    return start, end


def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--param takes NAME=VALUE, not {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_helpers.pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="validate, train, evaluate, register, test and promote a model")
    run_p.add_argument("--data", required=True, type=Path, help="CSV batch in the Bikeshare.csv format")
    run_p.add_argument("--window", type=_window, help="START:END the batch must fall in (default: the whole file)")
    run_p.add_argument("--tracking-uri", help="MLflow tracking/registry URI (default: the course workspace)")
    run_p.add_argument("--model-name", default=MODEL_NAME)
    run_p.add_argument("--experiment", default=EXPERIMENT_NAME)
    run_p.add_argument("--family", default="gradient_boosting", choices=sorted(DEFAULT_PARAMS))
    run_p.add_argument("--param", type=_param, action="append", default=[], metavar="NAME=VALUE")
    run_p.add_argument("--holdout-days", type=int, default=14)
    run_p.add_argument("--max-rmse", type=float, default=80.0, help="absolute gate on the holdout RMSE")
    run_p.add_argument("--min-improvement", type=float, default=0.05, help="relative margin over the champion")
    run_p.add_argument("--no-integration-test", action="store_true", help="skip serving the challenger")
    run_p.add_argument("--no-promote", action="store_true", help="stop at challenger (for a canary release)")
    run_p.add_argument("--reason", default="pipeline run", help="why: recorded with every alias move")
    for name, text in (("rollback", "move champion back to previous-champion"), ("status", "show the aliases")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--tracking-uri")
        p.add_argument("--model-name", default=MODEL_NAME)
        if name == "rollback":
            p.add_argument("--reason", default="manual rollback")
    args = parser.parse_args(argv)

    if args.command == "run":
        if not args.data.is_file():
            print(f"--data {args.data}: no such file", file=sys.stderr)
            return EXIT_CODES["usage"]
        config = PipelineConfig(
            data=args.data,
            window=args.window,
            tracking_uri=args.tracking_uri,
            model_name=args.model_name,
            experiment=args.experiment,
            family=args.family,
            params=dict(args.param),
            holdout_days=args.holdout_days,
            max_rmse=args.max_rmse,
            min_improvement=args.min_improvement,
            integration_test=not args.no_integration_test,
            promote=not args.no_promote,
            reason=args.reason,
        )
        result = run_pipeline(config)
        if result.promoted:
            outcome = f"PROMOTED version {result.version}"
        elif result.failed_stage:
            outcome = f"REFUSED at {result.failed_stage}"
        else:
            outcome = f"version {result.version} registered as {CHALLENGER!r}, not promoted"
        print(f"pipeline: {outcome} (exit {result.exit_code})")
        return result.exit_code

    import mlflow

    from mlops_helpers import workspace

    if args.tracking_uri:
        mlflow.set_tracking_uri(args.tracking_uri)
        mlflow.set_registry_uri(args.tracking_uri)
    else:
        workspace.setup()
    client = mlflow.MlflowClient()
    if args.command == "rollback":
        try:
            moved = rollback(client, args.model_name, args.reason)
        except StageRefused as refusal:
            print(f"rollback: REFUSED, {refusal.verdict}", file=sys.stderr)
            return EXIT_CODES["rollback"]
        print(f"rollback: champion -> version {moved['champion']} (previous-champion -> {moved['previous-champion']})")
        return 0
    print(json.dumps(registry_state(client, args.model_name), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
