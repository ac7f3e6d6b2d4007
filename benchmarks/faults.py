"""Fault injection: pipeline runs killed at random points and started at random offsets of each other (issue 21).

    make faults                      # or: .venv/bin/python benchmarks/faults.py [--trials 30] [--seed 21]

A workspace with a champion; then ``--trials`` trials, each one of:

- **kill**: one pipeline run (the CLI, a real process), killed with SIGKILL at a random moment, or at a random
  failpoint (:mod:`mlops_helpers.failpoints`: between recording an alias move and making it, after registering a
  version, at a stage boundary);
- **overlap**: two runs, the second started a random time after the first (up to a run's length), each with a batch
  that is promoted or refused, and sometimes one of them killed at a random moment.

Right after a kill: ``governance audit`` must exit 0 and the champion must load. After each trial, the recovery a run
does first (``pipeline recover``) and then the invariants: no promotion lost (every run that printed ``PROMOTED`` is
the champion, or was replaced by a later promotion), the champion loads, the audit check passes, no RUNNING run of a
dead process, nothing left by a crashed run (no stale lease, no interrupted move, no untested challenger, no half
registration, no ``previous-champion`` equal to ``champion``), no process outliving its run. Prints each trial and a
Markdown summary: trials, kills, overlaps, violations. A measurement, not a test: ``tests/test_faults.py`` runs a few
chosen cases of the same harness in CI.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from mlops_helpers import REPO_ROOT, data, pipeline, workspace
from mlops_helpers.names import CHALLENGER, CHAMPION, EXIT_CODE_TAG, PIPELINE_EXPERIMENT, PIPELINE_RUN_TAG, PREVIOUS
from mlops_helpers.registry import Registry

#: Quick runs (a ridge model, no integration test) whose gates let any sane model through: promoted...
PROMOTE = ["--family", "ridge", "--no-integration-test", "--min-improvement", "-10", "--max-rmse", "1000"]
#: ...or refused at evaluation, whatever the champion.
REFUSE = ["--family", "ridge", "--no-integration-test", "--max-rmse", "1"]
#: The failpoints a kill trial may pick (``registry.after-alias`` hits: 1 challenger, 2 previous-champion, 3 champion).
FAILPOINTS = (
    "pipeline.before-evaluate=kill",
    "pipeline.before-register=kill",
    "registry.after-register=kill",
    "registry.before-alias=kill",
    "registry.after-alias=kill",
    "registry.after-alias=kill@2",
    "registry.after-alias=kill@3",
    "registry.after-alias=kill@4",
    "pipeline.before-promote=kill",
)
DONE = re.compile(r"pipeline: PROMOTED version (\d+)")
#: How the ``why`` of a move that takes work back begins (a refusal's restore, a recovery, an undone block).
UNDOING = ("restored", "recovered", "undone")


@dataclass
class Outcome:
    """How one pipeline process ended: its exit code (-9: killed), the version it promoted, what it printed."""

    label: str
    code: int
    promoted: str | None
    output: str
    children: list[int] = field(default_factory=list)

    @property
    def killed(self) -> bool:
        return self.code == -signal.SIGKILL


class Bench:
    """A workspace with a ridge champion trained on January-February, and the batches the trials use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.batches = root / "batches"

    def build(self) -> Bench:
        os.environ["COURSE_WORKSPACE"] = str(self.root)
        ws = workspace.setup()
        self.batches.mkdir(parents=True, exist_ok=True)
        for name, window in (("jan-feb", "2011-01-01:2011-03-01"), ("jan-may", "2011-01-01:2011-06-01"),
                             ("jan-jul", "2011-01-01:2011-08-01")):  # fmt: skip
            data.source_batch(window).to_csv(self.batches / f"{name}.csv", index=False)
        if Registry().get(CHAMPION) is None:
            config = pipeline.PipelineConfig(data=self.batches / "jan-feb.csv", family="ridge", integration_test=False)
            with workspace.quiet_mlflow():
                pipeline.run_pipeline(config, echo=lambda line: None)
        assert Registry().get(CHAMPION) is not None, "the bench workspace has no champion"
        self.ws = ws
        return self

    def start(self, batch: str, args: list[str], failpoints: str = "", reason: str = "fault bench"):
        """Start a pipeline run as CI would: the CLI in its own process."""
        env = {
            **os.environ,
            "COURSE_WORKSPACE": str(self.root),
            "MLOPS_FAILPOINTS": failpoints,
            "PYTHONUNBUFFERED": "1",
        }
        command = [sys.executable, "-m", "mlops_helpers.pipeline", "run", "--data", str(self.batches / f"{batch}.csv"),
                   *args, "--reason", reason]  # fmt: skip
        return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)  # fmt: skip


class Watched:
    """A started run whose output is read on a thread (so a test can wait for a line), and killed on demand."""

    def __init__(self, label: str, process: subprocess.Popen) -> None:
        self.label, self.process, self.lines = label, process, []
        self.started, self.ended = time.monotonic(), None
        self.children: list[int] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))
        self.ended = time.monotonic()  # its output closed: it exited

    def wait_for(self, text: str, timeout: float = 300) -> bool:
        """Block until the run printed a line containing ``text`` (False if it ended or the time ran out first)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return True
            if self.process.poll() is not None and not self._reader.is_alive():
                return any(text in line for line in self.lines)
            time.sleep(0.05)
        return False

    def kill(self) -> None:
        import psutil

        with contextlib.suppress(psutil.NoSuchProcess):
            self.children = [c.pid for c in psutil.Process(self.process.pid).children(recursive=True)]
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.process.pid, signal.SIGKILL)

    def finish(self, timeout: float = 600) -> Outcome:
        code = self.process.wait(timeout)
        self.ended = self.ended or time.monotonic()
        self._reader.join(timeout=10)
        text = "\n".join(self.lines)
        found = DONE.search(text)
        return Outcome(self.label, code, found.group(1) if found and code == 0 else None, text, self.children)


# ------------------------------------------------------------------------------------------------------ invariants
def right_after_a_crash(registry: Registry) -> list[str]:
    """What must hold even before anything is recovered: the audit CLI exits 0, the champion loads."""
    from mlops_helpers.governance.__main__ import main as governance

    found = []
    with contextlib.redirect_stdout(io.StringIO()):
        code = governance(["audit", "--model-name", registry.name])
    if code != 0:
        found.append(f"audit exited {code} after a crash: {[f.message() for f in registry.check().findings]}")
    found += _champion_loads(registry)
    return found


def invariants(registry: Registry, outcomes: list[Outcome], experiment: str = PIPELINE_EXPERIMENT) -> list[str]:
    """Every invariant after a trial's runs ended and a recovery ran; one line per violation (empty: all hold)."""
    found = right_after_a_crash(registry)
    found += _no_promotion_lost(registry, outcomes)
    if not registry.check().ok:
        found.append(f"audit findings: {[f.message() for f in registry.check().findings]}")
    left = pipeline.leftovers(registry, experiment)
    found += [f"left over: {line}" for line in left]
    aliases = registry.aliases()
    if CHALLENGER in aliases:
        found.append(f"an untested challenger: version {aliases[CHALLENGER]}")
    if aliases.get(PREVIOUS) is not None and aliases.get(PREVIOUS) == aliases.get(CHAMPION):
        found.append(f"previous-champion equals champion (version {aliases[CHAMPION]})")
    found += _no_half_registrations(registry, aliases)
    found += _no_process_left(outcomes)
    return found


def _champion_loads(registry: Registry) -> list[str]:
    try:
        registry.load(CHAMPION)
    except Exception as exc:  # any failure to load is the violation
        return [f"the champion does not load: {type(exc).__name__}: {exc}"]
    return []


def _no_promotion_lost(registry: Registry, outcomes: list[Outcome]) -> list[str]:
    """Every version a run reported PROMOTED still exists, and is the champion unless a later promotion replaced it
    (the next move of ``champion`` after its promotion is not an undo, a restore or a recovery)."""
    promoted = {o.promoted for o in outcomes if o.promoted}
    existing = {str(v.version) for v in registry.versions()}
    found = [f"promoted version {v} was deleted" for v in sorted(promoted - existing)]
    moves = [e for e in registry.events() if e["action"] == "set" and e["alias"] == CHAMPION and not e.get("state")]
    for version in sorted(promoted):
        at = max(i for i, e in enumerate(moves) if e["version"] == version)
        later = moves[at + 1 : at + 2]
        if later and later[0]["why"].startswith(UNDOING):
            found.append(f"promotion lost: version {version} was moved off champion by {later[0]['why']!r}")
        if not later and registry.aliases().get(CHAMPION) != version:
            found.append(f"promotion lost: champion is {registry.aliases().get(CHAMPION)}, not version {version}")
    return found


def _no_half_registrations(registry: Registry, aliases: dict[str, str]) -> list[str]:
    """No version without an alias that was never champion, registered by a run that did not finish."""
    import mlflow

    champions = {e["version"] for e in registry.events() if e["action"] == "set" and e["alias"] == CHAMPION}
    found = []
    for mv in registry.versions():
        run_id = mv.tags.get(PIPELINE_RUN_TAG)
        unnamed = run_id and str(mv.version) not in {*aliases.values(), *champions}
        if unnamed and mlflow.get_run(run_id).data.tags.get(EXIT_CODE_TAG) != "0":
            found.append(f"version {mv.version}: registered by run {run_id}, which did not finish, and kept")
    return found


def _no_process_left(outcomes: list[Outcome], grace: float = 15.0) -> list[str]:
    from mlops_helpers import processes

    pids = [pid for o in outcomes for pid in o.children]
    deadline = time.monotonic() + grace
    while not processes.all_exited(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [] if processes.all_exited(pids) else [f"a process outlived its killed run: {pids}"]


# ---------------------------------------------------------------------------------------------------------- trials
@dataclass
class Tally:
    trials: int = 0
    kills: int = 0
    overlaps: int = 0
    promotions: int = 0
    violations: list[str] = field(default_factory=list)


def kill_trial(bench: Bench, rng: random.Random, run_seconds: float, tally: Tally) -> tuple[str, list[str]]:
    """One run, killed at a random failpoint or at a random moment."""
    registry = Registry()
    integration = rng.random() < 0.2
    args = [a for a in PROMOTE if a != "--no-integration-test" or not integration]
    if rng.random() < 0.5:
        point = rng.choice(FAILPOINTS)
        run = Watched("A", bench.start("jan-may", args, point))
        what = f"failpoint {point}"
    else:
        delay = rng.uniform(0.5, run_seconds)
        run = Watched("A", bench.start("jan-may", args))
        time.sleep(delay)
        what = f"SIGKILL after {delay:.1f} s" + (" (with the integration test)" if integration else "")
        run.kill()
    outcome = run.finish()
    tally.kills += outcome.killed
    tally.promotions += outcome.promoted is not None
    found = right_after_a_crash(registry) if outcome.killed else []
    pipeline.recover(registry)
    ended = "killed" if outcome.killed else f"not killed (exit {outcome.code})"
    return f"{what}: {ended}", found + invariants(registry, [outcome])


def overlap_trial(bench: Bench, rng: random.Random, run_seconds: float, tally: Tally) -> tuple[str, list[str]]:
    """Two runs, the second started a random time after the first; sometimes one of them is killed."""
    registry = Registry()
    plans = [(rng.choice(["jan-may", "jan-jul"]), PROMOTE if rng.random() < 0.7 else REFUSE) for _ in range(2)]
    offset = rng.uniform(0.0, run_seconds)
    victim = rng.choice([None, None, "A", "B"])
    first = Watched("A", bench.start(*plans[0], reason="run A"))
    time.sleep(offset)
    second = Watched("B", bench.start(*plans[1], reason="run B"))
    if victim:
        time.sleep(rng.uniform(0.5, run_seconds))
        (first if victim == "A" else second).kill()
    outcomes = [first.finish(), second.finish()]
    overlapped = second.started < first.ended
    tally.overlaps += overlapped
    tally.kills += sum(o.killed for o in outcomes)
    found = right_after_a_crash(registry) if any(o.killed for o in outcomes) else []
    pipeline.recover(registry)
    tally.promotions += sum(o.promoted is not None for o in outcomes)
    ends = ", ".join(f"{o.label} {_ending(o)}" for o in outcomes)
    what = f"B {offset:.1f} s after A ({plans[0][0]}, {plans[1][0]}){f', {victim} to be killed' if victim else ''}"
    what += "" if overlapped else " (A had ended: no overlap)"
    return f"{what}: {ends}", found + invariants(registry, outcomes)


def _ending(outcome: Outcome) -> str:
    if outcome.killed:
        return "killed"
    return f"promoted v{outcome.promoted}" if outcome.promoted else f"exit {outcome.code}"


def calibrate(bench: Bench) -> float:
    """Seconds one quick promoted run takes here, the faster of two (the range of random kill times and offsets)."""
    seconds = []
    for _ in range(2):
        run = Watched("calibration", bench.start("jan-may", PROMOTE))
        outcome = run.finish()
        assert outcome.code == 0, outcome.output
        seconds.append(run.ended - run.started)
    return min(seconds)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--workspace", type=Path, default=None, help="default: a temporary folder")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="faults-") as scratch:
        bench = Bench((args.workspace or Path(scratch)).resolve()).build()
        run_seconds = calibrate(bench)
        print(f"one run takes {run_seconds:.1f} s here; {args.trials} trials, seed {args.seed}", flush=True)
        tally = Tally()
        for trial in range(1, args.trials + 1):
            kind = rng.choice(["kill", "overlap"])
            started = time.monotonic()
            what, found = (kill_trial if kind == "kill" else overlap_trial)(bench, rng, run_seconds, tally)
            tally.trials += 1
            tally.violations += found
            verdict = "ok" if not found else "VIOLATED: " + "; ".join(found)
            print(f"trial {trial:>3} {kind:<8} {time.monotonic() - started:5.1f} s  {what}  {verdict}", flush=True)
    print("\n| trials | kills | overlaps (B started before A ended) | promotions | violations |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {tally.trials} | {tally.kills} | {tally.overlaps} | {tally.promotions} | {len(tally.violations)} |")
    return 1 if tally.violations else 0


if __name__ == "__main__":
    sys.exit(main())
