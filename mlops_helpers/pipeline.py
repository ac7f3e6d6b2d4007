"""The CI/CD pipeline: validate -> train -> evaluate -> register -> integration test -> promote (notebook 05).

Command line (the same in a notebook, in GitHub Actions or in Jenkins)::

    python -m mlops_helpers.pipeline run --data new.csv [--window 2011-01-01:2011-06-01] [--tracking-uri URI] ...
    python -m mlops_helpers.pipeline approve --version N --by NAME --why TEXT [--model-name NAME]
    python -m mlops_helpers.pipeline rollback [--model-name NAME] [--reason TEXT]
    python -m mlops_helpers.pipeline status [--model-name NAME]     # aliases, the lease, what crashed runs left
    python -m mlops_helpers.pipeline recover [--model-name NAME]    # resolve what crashed runs left, now

``run --no-promote`` stops at ``challenger``; ``approve`` is the human gate after it (a deploy job behind a GitHub
environment with required reviewers): it promotes the waiting challenger and records who approved it and why.

One list, :data:`STAGES`, drives everything a run reports: each stage prints a one-line verdict ``[N/6]``, tags the
MLflow run ``stage.N.<name>``, and has its own exit code, so a CI system shows at a glance where a run stopped. The
command line's options are generated from :class:`PipelineConfig`, whose defaults are the course's.

Every refusal leaves the registry as it was: the same aliases, and no half-registered version (a version
registered before a later stage failed is deleted again; its model stays logged on the run). Runs may overlap and
may be killed at any instant, so a run changes the registry only while it holds the model's lease
(:class:`~mlops_helpers.registry.Lease`, from the evaluation on: a second run waits, then evaluates against the
champion the first one left), a refusal undoes only this run's own changes, and a run that starts first resolves
what crashed runs left (:func:`recover`: their unfinished alias changes, half registrations, RUNNING runs, partial
uploads), recording it in the audit trail. The stage functions are plain functions over data frames and URIs; the
Kubeflow components of notebook 08 call them too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_helpers import data, models
from mlops_helpers.failpoints import failpoint
from mlops_helpers.names import (
    CHALLENGER,
    CHAMPION,
    DATA_SHA_TAG,
    DATA_TAG,
    EXIT_CODE_TAG,
    MODEL_NAME,
    PIPELINE_EXPERIMENT,
    PIPELINE_RUN_TAG,
    PREVIOUS,
    PROMOTED_TAG,
    REASON_TAG,
    RECOVERED_TAG,
    RUN_HEARTBEAT_TAG,
    RUN_OWNER_TAG,
)
from mlops_helpers.validation import BIKES_CONTRACT, DataContract, ValidationReport

if TYPE_CHECKING:  # pragma: no cover
    from mlflow.entities import Run

    from mlops_helpers.registry import Lease, Registry
    from mlops_helpers.workspace import Workspace


@dataclass(frozen=True)
class Stage:
    """One stage: its name, the exit code of a run it stops, and what it checks."""

    name: str
    exit_code: int
    refuses_when: str


#: The stages in order. Their position gives the ``[N/6]`` of the progress lines and the ``stage.N.<name>`` tags.
STAGES = (
    Stage("validate", 10, "a column, type, range, category, null, duplicate hour or hour outside the window is wrong"),
    Stage("train", 20, "there is too little data, or the model family is unknown"),
    Stage("evaluate", 30, "the holdout error is above the threshold, or not better enough than the champion's"),
    Stage("register", 40, "the registry refuses the new version"),
    Stage("integration", 50, "the served challenger answers wrongly, or with a 5xx"),
    Stage("promote", 60, "the registry refuses the alias move"),
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)
#: The exit code of every outcome: 0 promoted (or stopped at challenger), 2 bad usage, one per stage, 70 rollback
#: refused, 80 approval refused.
EXIT_CODES = {
    "promoted": 0,
    "usage": 2,
    **{stage.name: stage.exit_code for stage in STAGES},
    "rollback": 70,
    "approve": 80,
}


def stage_tag(name: str, steps: tuple[str, ...] = STAGE_NAMES) -> str:
    """The run tag that records stage ``name``'s verdict: ``stage.<position>.<name>`` (``steps`` in order)."""
    return f"stage.{steps.index(name) + 1}.{name}"


class StageRefused(Exception):
    """A stage refused to go on. Carries the stage name, its one-line verdict, details for the report, and the lines
    printed under the verdict (what is wrong, what to do, where the report is)."""

    def __init__(self, stage: str, verdict: str, details: dict | None = None, notes: list[str] | None = None) -> None:
        super().__init__(verdict)
        self.stage, self.verdict, self.details, self.notes = stage, verdict, details or {}, notes or []


def _option(help_text: str, **cli: Any) -> dict[str, Any]:
    return {"help": help_text, **cli}


@dataclass
class PipelineConfig:
    """Everything one pipeline run needs. The defaults are the course's; the command line's options come from here."""

    data: Path = field(metadata=_option("CSV batch in the Bikeshare.csv format", parse=Path))
    window: data.Window | None = field(
        default=None, metadata=_option("START:END the batch must fall in (default: the whole file)", parse="window")
    )
    tracking_uri: str | None = field(
        default=None, metadata=_option("MLflow tracking/registry URI (default: the course workspace)")
    )
    model_name: str = field(default=MODEL_NAME, metadata=_option("the registered model"))
    experiment: str = field(default=PIPELINE_EXPERIMENT, metadata=_option("the MLflow experiment of the runs"))
    family: str = field(default="gradient_boosting", metadata=_option("the model family", choices=models.FAMILIES))
    params: dict[str, Any] = field(
        default_factory=dict, metadata=_option("a hyperparameter over the family's default", flag="--param")
    )
    holdout_days: int = field(
        default=14, metadata=_option("the last days of the batch, held out to evaluate", parse=int)
    )
    max_rmse: float = field(default=80.0, metadata=_option("absolute gate on the holdout RMSE", parse=float))
    min_improvement: float = field(
        default=0.05, metadata=_option("relative margin the candidate must beat the champion by", parse=float)
    )
    integration_test: bool = field(default=True, metadata=_option("skip serving the challenger (stage 5)"))
    #: False stops after the integration test: the version stays ``challenger`` for a canary release (notebook 09).
    promote: bool = field(default=True, metadata=_option("stop at challenger (for a canary release)"))
    reason: str = field(default="pipeline run", metadata=_option("why: recorded with every alias move"))
    lease_wait: float = field(
        default=600.0, metadata=_option("seconds to wait while another run holds the registry's lease", parse=float)
    )

    def __post_init__(self) -> None:
        self.data = Path(self.data)
        if self.window is not None:
            self.window = data.Window.parse(self.window)

    def model_params(self) -> dict[str, Any]:
        """The family's default hyperparameters updated with :attr:`params`."""
        return {**models.DEFAULT_PARAMS.get(self.family, {}), **self.params}

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of option ``name`` (for the Kubeflow pipeline's parameters)."""
        found = next(f for f in fields(cls) if f.name == name)
        return found.default if found.default is not MISSING else found.default_factory()


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
    recovered: list[str] = field(default_factory=list)

    @property
    def failed_stage(self) -> str | None:
        return next((s.stage for s in self.stages if not s.passed), None)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.failed_stage] if self.failed_stage else 0

    def outcome(self) -> str:
        """One line for the end of a run: promoted, refused where, or left as challenger."""
        if self.promoted:
            return f"PROMOTED version {self.version}"
        if self.failed_stage:
            return f"REFUSED at {self.failed_stage}"
        return f"version {self.version} registered as {CHALLENGER!r}, not promoted"

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([{"stage": s.stage, "passed": s.passed, "verdict": s.verdict} for s in self.stages])


# ---------------------------------------------------------------------------------------------------------- stages
def validate_data(
    path: str | Path, window: tuple[str, str] | None = None, contract: DataContract = BIKES_CONTRACT
) -> tuple[pd.DataFrame | None, ValidationReport]:
    """Stage 1: check the batch against the data contract; the typed frame (None when refused) and the report.

    A file that is not a readable CSV table (empty, not UTF-8, ragged) is refused like any other violation."""
    raw, report = contract.check_file(path, window)
    if raw is None or not report.ok:
        return None, report
    return data.prepare_bikes(raw, source=str(path)), report


def split_holdout(frame: pd.DataFrame, holdout_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last ``holdout_days`` days of the batch are held out for evaluation; the rest trains."""
    cut = frame.index.max().normalize() - pd.Timedelta(days=holdout_days - 1)
    train, holdout = frame.loc[frame.index < cut], frame.loc[frame.index >= cut]
    if len(train) < 24 * 7 or len(holdout) < 24:
        raise StageRefused("train", f"too little data: {len(train)} hours to train, {len(holdout)} to evaluate")
    return train, holdout


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


def integration_test(model_uri: str, example: pd.DataFrame, expected, log_path: Path) -> list[str]:
    """Stage 5: serve ``model_uri`` with the course's prediction service on loopback and check real answers.

    Returns the checks that failed (empty: passed). The service is always stopped, also when a check raises.
    """
    import mlflow
    import requests

    from mlops_helpers import processes

    command = [sys.executable, "-m", "mlops_helpers.serving", "--model", model_uri, "--port", "{port}"]
    command += ["--log", str(log_path)]
    # The service must read the registry this run writes to (a tracking server in CI, the workspace locally).
    env = {"MLFLOW_TRACKING_URI": mlflow.get_tracking_uri(), "MLFLOW_REGISTRY_URI": mlflow.get_registry_uri()}
    service = processes.start(command, name="pipeline-integration", health_path="/health", timeout=90, env=env)
    with service, requests.Session() as http:
        return _check_service(http, service.url, model_uri, example, expected)


def _check_service(http, url: str, model_uri: str, example: pd.DataFrame, expected) -> list[str]:
    failed: list[str] = []
    health = http.get(f"{url}/health", timeout=10).json()
    if str(health.get("version")) != model_uri.rsplit("/", 1)[-1]:
        failed.append(f"/health reports version {health.get('version')}, expected {model_uri}")
    records = json.loads(example.to_json(orient="records"))
    answer = http.post(f"{url}/predict", json={"records": records}, timeout=10)
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
        status = http.post(f"{url}/predict", json=body, timeout=10).status_code
        if not 400 <= status < 500:
            failed.append(f"{what} got HTTP {status}, expected a 4xx refusal")
    if http.get(f"{url}/health", timeout=10).status_code != 200:
        failed.append("the service stopped answering after bad requests")
    return failed


# ------------------------------------------------------------------------------------------------------- the run
class _Run:
    """One pipeline run's working state; one method per stage, each returning its verdict or raising StageRefused."""

    def __init__(self, config: PipelineConfig, ws: Workspace, registry: Registry, run_id: str, echo) -> None:
        self.config, self.ws, self.registry, self.run_id, self.echo = config, ws, registry, run_id, echo
        self.reports = ws.root / "pipeline"
        self.reports.mkdir(parents=True, exist_ok=True)
        self.version: str | None = None
        self.promoted = False
        self.lease: Lease | None = None
        self.leases = contextlib.ExitStack()  # the registry lease, from evaluate to the end of the run

    def validate(self) -> str:
        import mlflow

        frame, report = validate_data(self.config.data, self.config.window)
        document = {**report.to_dict(), "data": str(self.config.data), "run_id": self.run_id}
        path = self.reports / "validation.json"
        path.write_text(json.dumps(document, indent=1))  # rewritten by every run, whatever it finds
        mlflow.log_dict(document, "reports/validation.json")
        if frame is None:
            raise StageRefused("validate", report.verdict(), report.to_dict(), [*report.explain(), f"report: {path}"])
        mlflow.set_tag(DATA_SHA_TAG, data.sha256(self.config.data))  # the file's identity, for lineage (10)
        self.frame = frame
        return report.verdict()

    def train(self) -> str:
        import mlflow

        config = self.config
        self.train_part, self.holdout = split_holdout(self.frame, config.holdout_days)
        params = config.model_params()
        try:
            self.model = models.build_model(config.family, params)
        except ValueError as exc:
            raise StageRefused("train", str(exc)) from None
        self.model.fit(*data.xy(self.train_part))
        mlflow.log_params({"family": config.family, **params, "holdout_days": config.holdout_days})
        source = str(Path(config.data).resolve())
        for context, part in (("training", self.train_part), ("evaluation", self.holdout)):
            dataset = mlflow.data.from_pandas(
                part.reset_index(), source=source, name=f"pipeline-{context}", targets=data.TARGET
            )
            mlflow.log_input(dataset, context=context)
        self.X_hold, _ = data.xy(self.holdout)
        self.info = models.log_model(self.model, self.X_hold)
        train_rmse = rmse(self.model, self.train_part)
        mlflow.log_metric("train_rmse", train_rmse)
        return f"{config.family} on {len(self.train_part)} hours, train RMSE {train_rmse:.2f}"

    def evaluate(self) -> str:
        import mlflow

        # From here on the run may change the registry: hold its lease, so that an overlapping run waits and then
        # evaluates against the champion this one leaves (taking it over from a crashed run undoes that run's work).
        why = f"pipeline run {self.run_id}: {self.config.reason}"
        lease = self.registry.lease(why, wait=self.config.lease_wait, echo=lambda line: self.echo(f"      {line}"))
        self.lease = self.leases.enter_context(lease)
        for line in self.lease.recovered:
            self.echo(f"      recovered: {line}")
        champion = self.registry.get(CHAMPION)
        loaded = self.registry.load(champion.version) if champion is not None else None
        evaluation = evaluate(self.model, loaded, self.holdout, self.config.max_rmse, self.config.min_improvement)
        mlflow.log_metric("holdout_rmse", evaluation.candidate_rmse)
        if evaluation.champion_rmse is not None:
            mlflow.log_metric("champion_holdout_rmse", evaluation.champion_rmse)
            mlflow.set_tag("pipeline.champion_version", champion.version)
        mlflow.log_dict(asdict(evaluation), "reports/evaluation.json")
        if not evaluation.passed:
            raise StageRefused("evaluate", evaluation.verdict(), asdict(evaluation))
        return evaluation.verdict()

    def register(self) -> str:
        self.version = self.registry.register(
            self.info.model_uri, self.config.reason, tags={PIPELINE_RUN_TAG: self.run_id}
        )
        return f"version {self.version} registered as {CHALLENGER!r}"

    def integration(self) -> str:
        if not self.config.integration_test:
            return "skipped (--no-integration-test)"
        log_path = self.reports / f"integration-v{self.version}.jsonl"
        uri = f"models:/{self.config.model_name}/{self.version}"
        example = self.X_hold.head(3)
        failures = integration_test(uri, example, self.model.predict(example), log_path)
        if failures:
            raise StageRefused("integration", "; ".join(failures), {"failures": failures})
        return "served on loopback: health, example and 3 bad requests answered right"

    def promote(self) -> str:
        if not self.config.promote:
            return f"skipped (--no-promote): version {self.version} stays {CHALLENGER!r}"
        moved = self.registry.promote(self.version, self.config.reason)
        self.promoted = True
        previous = moved["previous-champion"]
        kept = f" (previous-champion -> version {previous})" if previous else ""
        return f"champion -> version {self.version}{kept}"

    def undo(self, why: str) -> list[str]:
        """Put back this run's own registry changes (a refusal); what had to be left alone, one line each."""
        if self.lease is None:
            return []
        return self.lease.undo(why).left


def run_pipeline(config: PipelineConfig, echo: Callable[[str], Any] = print) -> PipelineResult:
    """Run every stage in order, stop at the first refusal, and undo this run's registry changes when refusing.

    Before the first stage it resolves what crashed runs left (:func:`recover`)."""
    import mlflow

    from mlops_helpers import workspace
    from mlops_helpers.registry import Registry

    ws = workspace.connect(config.tracking_uri, config.experiment)
    registry = Registry(config.model_name)
    result = PipelineResult(recovered=recover(registry, config.experiment, config.lease_wait))
    for line in result.recovered:
        echo(f"recovered: {line}")

    def record(name: str, started: float, verdict: str, passed: bool = True, notes=(), **details: Any) -> None:
        result.stages.append(StageResult(name, passed, verdict, round(time.perf_counter() - started, 2), details))
        mlflow.set_tag(stage_tag(name), "passed" if passed else "refused")
        number = f"[{len(result.stages)}/{len(STAGES)}]"
        echo(f"{number} {name:<11} {'ok     ' if passed else 'REFUSED'} {verdict}")
        for note in notes:
            echo(f"      {note}")

    tags = {DATA_TAG: str(config.data), REASON_TAG: config.reason, **owner_tags(config.model_name)}
    with mlflow.start_run(run_name=f"pipeline-{config.family}", tags=tags) as active, _heartbeat(active.info.run_id):
        result.run_id = active.info.run_id
        run = _Run(config, ws, registry, active.info.run_id, echo)
        with run.leases:
            try:
                for stage in STAGES:
                    failpoint(f"pipeline.before-{stage.name}")
                    started = time.perf_counter()
                    record(stage.name, started, getattr(run, stage.name)())
            # A refusal, or an unexpected failure of the stage it happened in: never a half state.
            except Exception as exc:
                refusal = exc if isinstance(exc, StageRefused) else None
                name = refusal.stage if refusal else STAGE_NAMES[len(result.stages)]
                verdict = refusal.verdict if refusal else f"{type(exc).__name__}: {exc}"
                details = refusal.details if refusal else {}
                record(name, time.perf_counter(), verdict, False, refusal.notes if refusal else (), **details)
                why = f"restored: refused at {name}" if refusal else f"restored: {name} failed"
                for line in run.undo(why):
                    echo(f"      left alone: {line}")
            else:
                result.version, result.promoted = run.version, run.promoted
        mlflow.set_tags({EXIT_CODE_TAG: str(result.exit_code), PROMOTED_TAG: str(result.promoted)})
    return result


# ------------------------------------------------------------------------------------------------ the human gate
class ApprovalRefused(ValueError):
    """An approval that cannot be carried out; the message says why and what to do."""


def approval_problem(registry: Registry, version: str, by: str, why: str) -> str | None:
    """Why ``version`` cannot be approved by ``by`` for ``why``, or None when it can."""
    if not by.strip() or not why.strip():
        return "an approval records who approves and why: give both --by and --why"
    challenger = registry.aliases().get(CHALLENGER)
    if challenger != version:
        now = f"the challenger is version {challenger}" if challenger else "there is no challenger"
        return (
            f"version {version} is not the current {CHALLENGER!r} ({now}): only the version a pipeline run left "
            f"waiting (run --no-promote) can be approved"
        )
    run_id = registry.version(version).tags.get(PIPELINE_RUN_TAG)
    if not run_id:
        return f"version {version} was not registered by a pipeline run (no {PIPELINE_RUN_TAG!r} tag): run the pipeline"
    code = registry.client.get_run(run_id).data.tags.get(EXIT_CODE_TAG)
    if code is None:
        return f"the run {run_id} that registered version {version} is not a finished pipeline run (no exit code)"
    if code != "0":
        return f"the pipeline run {run_id} that registered version {version} did not pass (exit code {code})"
    return None


def approve(version: str | int, by: str, why: str, registry: Registry | None = None) -> dict:
    """The human gate (the seed's "upon approval"): promote the waiting challenger and record who approved it and why.

    :class:`ApprovalRefused` unless ``by`` and ``why`` are given, ``version`` is the current ``challenger``, and the
    pipeline run that registered it passed every stage (exit code 0). The promotion goes through
    :meth:`Registry.promote` with ``by``, so every audit event of it names the approver, and the run's
    ``pipeline.promoted`` tag becomes ``True``. Returns ``{"champion", "previous-champion"}``.
    """
    from mlops_helpers.registry import Registry

    registry = registry or Registry()
    version = str(version)
    problem = approval_problem(registry, version, by, why)
    if problem:
        raise ApprovalRefused(problem)
    run_id = registry.version(version).tags[PIPELINE_RUN_TAG]
    moved = registry.promote(version, why, by=by)
    registry.client.set_tag(run_id, PROMOTED_TAG, "True")
    return moved


# --------------------------------------------------------------------------------------------------------- recovery
#: Seconds between a run's heartbeats (its tag ``pipeline.heartbeat``), and how old the last one may be before a
#: process on another host counts the run as dead (on the run's own host its PID says so at once).
RUN_HEARTBEAT = 10.0
RUN_STALE = 120.0
#: The prefix MLflow's local artifact store gives a file while it is being written (hidden, renamed when complete):
#: what a writer killed mid-upload leaves behind (a test checks it is still MLflow's).
PARTIAL_UPLOAD = ".artifact.uploading."


def owner_tags(model_name: str) -> dict[str, str]:
    """The tags that say which process runs a pipeline run (and for which model), and that it is alive now."""
    from mlops_helpers.registry import this_process

    return {RUN_OWNER_TAG: json.dumps({**this_process(), "model": model_name}), RUN_HEARTBEAT_TAG: f"{time.time():.0f}"}


@contextlib.contextmanager
def _heartbeat(run_id: str) -> Iterator[None]:
    """Renew the run's heartbeat tag every :data:`RUN_HEARTBEAT` seconds while the block runs."""
    import mlflow

    from mlops_helpers.registry import Heartbeat

    client = mlflow.MlflowClient()
    beat = Heartbeat(lambda: client.set_tag(run_id, RUN_HEARTBEAT_TAG, f"{time.time():.0f}"), RUN_HEARTBEAT).start()
    try:
        yield
    finally:
        beat.stop()


def run_gone(run: Run, now: float | None = None) -> str | None:
    """Why a RUNNING pipeline run's process is gone, or None (it runs, or it cannot be told: no owner recorded)."""
    from mlops_helpers.registry import owner_gone

    tags = run.data.tags
    try:
        owner = json.loads(tags[RUN_OWNER_TAG])
    except (KeyError, ValueError):
        return None
    gone = owner_gone(owner)
    if gone:
        return f"its process (pid {owner['pid']} on {owner['host']}) is gone"
    beat = float(tags.get(RUN_HEARTBEAT_TAG, run.info.start_time / 1000))
    silent = (time.time() if now is None else now) - beat
    if gone is None and silent > RUN_STALE:
        return f"no heartbeat from {owner['host']} for {silent:.0f} s"
    return None


def dead_runs(experiment: str, model_name: str | None = None) -> list[tuple[Run, str]]:
    """The experiment's RUNNING runs whose process is gone (those for ``model_name`` only, if given), and why."""
    import mlflow

    found = mlflow.get_experiment_by_name(experiment)
    if found is None:
        return []
    runs = mlflow.MlflowClient().search_runs([found.experiment_id], "attributes.status = 'RUNNING'", max_results=500)
    dead = [(run, why) for run in runs if (why := run_gone(run))]
    if model_name is None:
        return dead
    return [(run, why) for run, why in dead if json.loads(run.data.tags[RUN_OWNER_TAG]).get("model") == model_name]


def leftovers(registry: Registry, experiment: str = PIPELINE_EXPERIMENT) -> list[str]:
    """What crashed runs left, one line each (read only): a stale lease, interrupted alias moves, RUNNING runs of
    dead processes with what they registered, partial uploads."""
    found = registry.leftovers()
    for run, why in dead_runs(experiment, registry.name):
        run_id = run.info.run_id
        found.append(f"pipeline run {run_id} is RUNNING, but {why}")
        found += [
            f"version {v.version} of run {run_id}, {_aliased(registry, v.version)}"
            for v in _versions_of(registry, run_id)
        ]
        found += [f"a partial upload of run {run_id}: {path}" for path in partial_uploads(run)]
    return found


def recover(registry: Registry, experiment: str = PIPELINE_EXPERIMENT, wait: float = 600.0) -> list[str]:
    """Resolve what crashed runs left, recorded in the model's audit trail; what was done, one line each.

    Taking the model's lease from a crashed holder undoes its unfinished alias changes and deletes its half
    registrations (see :mod:`~mlops_helpers.registry`). Then each RUNNING run of a dead process is ended as
    ``KILLED``: a challenger it registered and never finished with is removed, its versions without an alias are
    deleted, its pending logged models are marked failed, its partial uploads in a local artifact store deleted.
    Nothing is done (and no lease taken) when nothing was left; ``wait``: seconds to wait for a live lease holder.
    """
    dead = dead_runs(experiment, registry.name)
    if not registry.exists():  # no model, so no lease, no versions, no trail: only the runs to end
        return [line for run, why in dead for line in _end_dead_run(None, run, why)]
    if not dead and not registry.leftovers():
        return []
    with registry.lease(f"recovery before a pipeline run of {registry.name}", wait=wait) as lease:
        done = list(lease.recovered)
        for run, why in dead:
            done += _end_dead_run(registry, run, why)
    return done


def _versions_of(registry: Registry, run_id: str) -> list:
    return [v for v in registry.versions() if v.tags.get(PIPELINE_RUN_TAG) == run_id] if registry.exists() else []


def _aliased(registry: Registry, version) -> str:
    aliases = sorted(a for a, v in registry.aliases().items() if v == str(version))
    return f"aliases {', '.join(aliases)}" if aliases else "no alias (a half registration)"


def _end_dead_run(registry: Registry | None, run: Run, why: str) -> list[str]:
    """Resolve one RUNNING run of a dead process (under the lease): its challenger and half registrations, its
    pending logged models and partial uploads, and the run itself (``KILLED``); recorded in the audit trail."""
    import mlflow

    client, run_id = mlflow.MlflowClient(), run.info.run_id
    done = []
    for mv in _versions_of(registry, run_id) if registry is not None else []:
        number = str(mv.version)
        if registry.aliases().get(CHALLENGER) == number:
            registry.remove(CHALLENGER, f"recovered: version {number} of pipeline run {run_id}, never finished ({why})")
            done.append(f"removed @{CHALLENGER} from version {number}: its run never finished")
        if number not in registry.aliases().values():
            client.delete_model_version(registry.name, number)
            done.append(f"deleted version {number}, registered by run {run_id} and never named")
    done += _discard_run_outputs(client, run)
    client.set_tag(run_id, RECOVERED_TAG, f"ended by a recovery: {why}")
    client.set_terminated(run_id, "KILLED")
    done.append(f"ended pipeline run {run_id} as KILLED: it was RUNNING, but {why}")
    if registry is not None:
        registry.note("recovered: " + "; ".join(done))
    return done


def _discard_run_outputs(client, run: Run) -> list[str]:
    """Mark a dead run's pending logged models failed and delete its partial uploads (local stores only)."""
    from mlflow.entities import LoggedModelStatus

    done = []
    for model in _logged_models(client, run):
        if model.status == LoggedModelStatus.PENDING:
            client.finalize_logged_model(model.model_id, LoggedModelStatus.FAILED)
            done.append(f"marked logged model {model.model_id} FAILED (its upload never finished)")
    for path in partial_uploads(run, client):
        path.unlink(missing_ok=True)
        done.append(f"deleted the partial upload {path}")
    return done


def _logged_models(client, run: Run) -> list:
    return list(client.search_logged_models([run.info.experiment_id], f"source_run_id = '{run.info.run_id}'"))


def partial_uploads(run: Run, client=None) -> list[Path]:
    """The hidden files a writer killed mid-upload left in a run's artifacts and its logged models' (only where
    the artifact store is a local folder: a tracking server's store is the server's to sweep)."""
    import mlflow

    client = client or mlflow.MlflowClient()
    roots = [run.info.artifact_uri, *(m.artifact_location for m in _logged_models(client, run))]
    found = []
    for uri in roots:
        folder = _local_folder(uri)
        if folder is not None and folder.is_dir():
            found += sorted(folder.rglob(f"{PARTIAL_UPLOAD}*"))
    return found


def _local_folder(uri: str) -> Path | None:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(uri)
    if parsed.scheme == "file":
        return Path(unquote(parsed.path))
    return Path(uri) if not parsed.scheme else None


def status(registry: Registry, experiment: str = PIPELINE_EXPERIMENT) -> dict[str, Any]:
    """The registry's state, who holds its lease, and what crashed runs left (read only)."""
    holder = registry.holder()
    lease = None if holder is None else {"held by": holder.describe(), "stale": holder.stale()}
    return {**registry.state(), "lease": lease, "leftovers": leftovers(registry, experiment)}


# ------------------------------------------------------------------------------------------------- command line
def _param(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"--param takes NAME=VALUE, not {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _window(text: str) -> data.Window:
    try:
        return data.Window.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--window: {exc}") from None


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per :class:`PipelineConfig` field, with its default, type and help (no option is written twice)."""
    for option in fields(PipelineConfig):
        meta, dest = option.metadata, option.name
        flag = meta.get("flag", "--" + dest.replace("_", "-"))
        if option.default is True:  # a stage that runs by default: --no-<stage> turns it off
            parser.add_argument(f"--no-{dest.replace('_', '-')}", dest=dest, action="store_false", help=meta["help"])
        elif dest == "params":
            parser.add_argument(flag, dest=dest, type=_param, action="append", default=[], metavar="NAME=VALUE",
                                help=meta["help"])  # fmt: skip
        else:
            parse = _window if meta.get("parse") == "window" else meta.get("parse", str)
            default = option.default if option.default is not MISSING else None
            parser.add_argument(flag, dest=dest, type=parse, default=default, required=option.default is MISSING,
                                choices=meta.get("choices"), help=meta["help"])  # fmt: skip


def _add_registry_commands(sub) -> None:
    """The subcommands that act on the registry only: approve, rollback, status, recover."""
    texts = {
        "approve": "the human gate: promote the waiting challenger, recording who approved it and why",
        "rollback": "move champion back to previous-champion",
        "status": "show the aliases, the registry lease and what crashed runs left",
        "recover": "resolve what crashed runs left (a run does it before its first stage)",
    }
    for name, text in texts.items():
        p = sub.add_parser(name, help=text)
        p.add_argument("--tracking-uri")
        p.add_argument("--model-name", default=MODEL_NAME)
        if name == "rollback":
            p.add_argument("--reason", default="manual rollback")
        elif name in ("status", "recover"):
            p.add_argument("--experiment", default=PIPELINE_EXPERIMENT, help="the experiment of the pipeline's runs")
    approve_parser = sub.choices["approve"]
    approve_parser.add_argument("--version", required=True, help="the challenger's version number")
    approve_parser.add_argument("--by", required=True, help="who approves (recorded in the audit trail)")
    approve_parser.add_argument("--why", required=True, help="why (recorded in the audit trail)")


def _approve_command(registry: Registry, args: argparse.Namespace) -> int:
    try:
        moved = approve(args.version, args.by, args.why, registry)
    except ApprovalRefused as refusal:
        print(f"approve: REFUSED, {refusal}", file=sys.stderr)
        return EXIT_CODES["approve"]
    kept = f" (previous-champion -> version {moved[PREVIOUS]})" if moved[PREVIOUS] else ""
    print(f"approve: champion -> version {moved[CHAMPION]}{kept}, approved by {args.by}: {args.why}")
    return 0


def main(argv: list[str] | None = None) -> int:
    from mlops_helpers.registry import Registry, RegistryError
    from mlops_helpers.workspace import connect

    parser = argparse.ArgumentParser(prog="python -m mlops_helpers.pipeline", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_config_options(sub.add_parser("run", help="validate, train, evaluate, register, test and promote a model"))
    _add_registry_commands(sub)
    args = parser.parse_args(argv)

    if args.command == "run":
        options = {f.name: getattr(args, f.name) for f in fields(PipelineConfig)}
        if not options["data"].is_file():
            print(f"--data {options['data']}: no such file", file=sys.stderr)
            return EXIT_CODES["usage"]
        result = run_pipeline(PipelineConfig(**{**options, "params": dict(options["params"])}))
        print(f"pipeline: {result.outcome()} (exit {result.exit_code})")
        return result.exit_code

    connect(args.tracking_uri)
    registry = Registry(args.model_name)
    if args.command == "approve":
        return _approve_command(registry, args)
    if args.command == "rollback":
        try:
            moved = registry.rollback(args.reason)
        except RegistryError as refusal:
            print(f"rollback: REFUSED, {refusal}", file=sys.stderr)
            return EXIT_CODES["rollback"]
        print(f"rollback: champion -> version {moved['champion']} (previous-champion -> {moved['previous-champion']})")
        return 0
    if args.command == "recover":
        done = recover(registry, args.experiment)
        print("\n".join(f"recovered: {line}" for line in done) or "recover: nothing was left by a crashed run")
        return 0
    print(json.dumps(status(registry, args.experiment), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
