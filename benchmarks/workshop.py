"""Several learners on one machine: N copies of the course running notebooks at once, each checked isolated (issue 16).

    .venv/bin/python benchmarks/workshop.py                      # 3 learners, notebooks 01 02 04 06, at once
    .venv/bin/python benchmarks/workshop.py --learners 1 --all   # one learner's whole course (as `make course`)
    .venv/bin/python benchmarks/workshop.py -p SERVER_TIMEOUT 180  # a notebook parameter for every learner

Each learner gets their own copy of the repository (``git clone --local`` of this one's HEAD, in ``--root``) and
their own workspace (``<copy>/workspace/headless``, as ``COURSE_WORKSPACE``); all share the one course venv, as the
learners of a JupyterHub share one image. Each copy runs the course's headless runner
(``python -m mlops_helpers.course run``) with the copy first on ``PYTHONPATH``, so the runner, its kernels and the
servers they start use the copy's package, notebooks and data. All learners start together.

Every second it samples each learner's processes (every process whose environment has the learner's
``COURSE_WORKSPACE``: the runner, the kernels, and the MLflow, model, Prometheus and Alertmanager servers they start)
and records their memory (the sum of RSS, which counts shared libraries once per process, and the sum of PSS, which
shares them out: the fair "what this learner costs"), the TCP ports they listen on, and the ports they connect to.

Isolation is checked, not assumed:

- every notebook of every learner ends ``ok`` (a fixed port or a shared file would make one fail);
- every listening socket is on loopback, and no port is listened on by two learners at the same moment;
- no learner's process has a connection to a port another learner is listening on at that moment (no cross-talk);
- no SQLite database in a learner's workspace (tracking store, registry, the servers' stores) mentions another
  learner's folder or the source repository's own workspace;
- every learner's registry holds the same models with the same number of versions (they ran the same notebooks).

Prints per learner: wall time, peak memory (RSS and PSS of the process set), workspace disk, the runner's table; then
the checks. A measurement, not a test (it takes minutes and all the cores): nothing in CI runs it.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parent.parent
ENV_VAR = "COURSE_WORKSPACE"
LOOPBACK = {"127.0.0.1", "::1"}
MIB = 1024 * 1024


@dataclass
class Learner:
    """One learner: their copy, their workspace, their runner and what was measured."""

    name: str
    copy: Path
    runner: subprocess.Popen | None = None
    started: float = 0.0
    seconds: float = 0.0
    peak_rss: int = 0
    peak_pss: int = 0
    peak_processes: int = 0
    ports: set[int] = field(default_factory=set)
    output: str = ""

    @property
    def workspace(self) -> Path:
        return self.copy / "workspace" / "headless"


def make_copies(root: Path, count: int) -> list[Learner]:
    """``count`` fresh clones of this repository's HEAD under ``root`` (emptied first)."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    learners = []
    for i in range(1, count + 1):
        copy = root / f"learner-{i}"
        subprocess.run(["git", "clone", "--quiet", "--local", str(REPO), str(copy)], check=True)
        learners.append(Learner(f"learner-{i}", copy))
    return learners


def start(learner: Learner, only: list[str] | None, params: list[list[str]]) -> None:
    """Start the learner's headless run in their copy, their workspace, their package first on the path."""
    learner.workspace.mkdir(parents=True)
    env = dict(psutil.Process().environ())
    env.update({ENV_VAR: str(learner.workspace), "PYTHONPATH": str(learner.copy)})
    command = [sys.executable, "-m", "mlops_helpers.course", "run", "--workspace", str(learner.workspace)]
    if only:
        command += ["--only", *only]
    for name, value in params:
        command += ["-p", name, value]
    learner.started = time.monotonic()
    learner.runner = subprocess.Popen(
        command, cwd=learner.copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def owner(proc: psutil.Process, by_workspace: dict[str, Learner]) -> Learner | None:
    try:
        return by_workspace.get(proc.environ().get(ENV_VAR, ""))
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def sockets(
    learner: Learner,
    proc: psutil.Process,
    conns: list,
    listening: dict[int, str],
    connected: list[tuple[str, int]],
    problems: list[str],
) -> None:
    """Record one process's listening ports (loopback only, one learner a port) and the ports it connects to."""
    for conn in conns:
        if conn.status == psutil.CONN_LISTEN:
            ip, port = conn.laddr.ip, conn.laddr.port
            if ip not in LOOPBACK:
                problems.append(f"{learner.name}: pid {proc.pid} listens on {ip}:{port}")
            other = listening.setdefault(port, learner.name)
            if other != learner.name:
                problems.append(f"port {port} listened on by {other} and {learner.name} at the same time")
            learner.ports.add(port)
        elif conn.status == psutil.CONN_ESTABLISHED and conn.raddr:
            connected.append((learner.name, conn.raddr.port))


def sample(learners: list[Learner], problems: list[str]) -> None:
    """One sample: each learner's processes, memory, listening ports and connections; record cross-talk."""
    by_workspace = {str(learner.workspace): learner for learner in learners}
    rss = {learner.name: 0 for learner in learners}
    pss = dict(rss)
    count = dict(rss)
    listening: dict[int, str] = {}
    connected: list[tuple[str, int]] = []
    for proc in psutil.process_iter():
        learner = owner(proc, by_workspace)
        if learner is None:
            continue
        try:
            memory = proc.memory_full_info()
            conns = proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        rss[learner.name] += memory.rss
        pss[learner.name] += getattr(memory, "pss", memory.rss)
        count[learner.name] += 1
        sockets(learner, proc, conns, listening, connected, problems)
    for name, port in connected:
        other = listening.get(port)
        if other is not None and other != name:
            problems.append(f"{name} connected to port {port}, which {other} listens on")
    for learner in learners:
        learner.peak_rss = max(learner.peak_rss, rss[learner.name])
        learner.peak_pss = max(learner.peak_pss, pss[learner.name])
        learner.peak_processes = max(learner.peak_processes, count[learner.name])


def disk(path: Path) -> int:
    """Bytes of the files under ``path`` (each file once)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def databases(learner: Learner) -> list[Path]:
    return sorted(p for p in learner.workspace.rglob("*.db") if p.is_file())


def registry(learner: Learner) -> dict[str, int]:
    """Registered model -> number of versions, in the learner's main tracking store."""
    with sqlite3.connect(learner.workspace / "mlflow.db") as db:
        return dict(db.execute("SELECT name, COUNT(*) FROM model_versions GROUP BY name ORDER BY name").fetchall())


def check_stores(learners: list[Learner]) -> list[str]:
    """No SQLite database of a learner mentions another learner's folder or the source repository's workspace."""
    problems = []
    for learner in learners:
        foreign = [str(other.copy) + "/" for other in learners if other is not learner]
        foreign.append(str(REPO / "workspace") + "/")
        for path in databases(learner):
            with sqlite3.connect(path) as db:
                dump = "\n".join(db.iterdump())
            for text in foreign:
                if text in dump:
                    problems.append(f"{path.relative_to(learner.copy.parent)} mentions {text}")
    registries = {learner.name: registry(learner) for learner in learners}
    if len({repr(r) for r in registries.values()}) > 1:
        problems.append(f"the learners' registries differ: {registries}")
    return problems


def table(learner: Learner) -> str:
    """The runner's own table (the lines from its header on)."""
    lines = learner.output.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("notebook ")), len(lines))
    return "\n".join(lines[start:])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--learners", type=int, default=3)
    parser.add_argument("--notebooks", nargs="+", default=["01", "02", "04", "06"], help="prefixes, as --only")
    parser.add_argument("--all", action="store_true", help="every notebook, as make course")
    parser.add_argument("--root", type=Path, default=Path("/tmp/course-workshop"), help="where the copies go")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    parser.add_argument(
        "-p",
        dest="params",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a notebook parameter, as the runner's -p (e.g. -p SERVER_TIMEOUT 180)",
    )
    args = parser.parse_args()
    only = None if args.all else args.notebooks

    learners = make_copies(args.root.resolve(), args.learners)
    problems: list[str] = []
    began = time.monotonic()
    for learner in learners:
        start(learner, only, args.params)
    readers = []
    for learner in learners:

        def read(learner: Learner = learner) -> None:
            assert learner.runner is not None and learner.runner.stdout is not None
            learner.output = learner.runner.stdout.read()
            learner.runner.wait()
            learner.seconds = time.monotonic() - learner.started

        readers.append(threading.Thread(target=read, daemon=True))
        readers[-1].start()
    while any(reader.is_alive() for reader in readers):
        sample(learners, problems)
        time.sleep(args.interval)
    wall = time.monotonic() - began

    chosen = "every notebook" if args.all else "notebooks " + " ".join(args.notebooks)
    print(f"{len(learners)} learner(s), {chosen}, at once, on {psutil.cpu_count()} cores; wall time {wall:.0f} s\n")
    print("| learner | wall s | peak RSS MiB | peak PSS MiB | peak processes | ports listened on | workspace MiB |")
    print("|---|---|---|---|---|---|---|")
    for learner in learners:
        print(
            f"| {learner.name} | {learner.seconds:.0f} | {learner.peak_rss / MIB:.0f} | {learner.peak_pss / MIB:.0f} "
            f"| {learner.peak_processes} | {len(learner.ports)} | {disk(learner.workspace) / MIB:.0f} |"
        )
    for learner in learners:
        print(f"\n{learner.name} (exit code {learner.runner.returncode if learner.runner else '?'}):\n{table(learner)}")
        failed = [line for line in table(learner).splitlines() if re.search(r"\sfailed\s", line)]
        if learner.runner is None or learner.runner.returncode != 0 or failed:
            problems.append(f"{learner.name}: the run failed: {failed or learner.output[-2000:]}")
    problems += check_stores(learners)
    print(f"\nregistry of each learner: {registry(learners[0])}")
    shared = set.intersection(*(learner.ports for learner in learners)) if len(learners) > 1 else set()
    print(f"ports used by every learner (one after another, never at once): {len(shared)}")
    problems = list(dict.fromkeys(problems))
    print("\nisolation: " + ("every check passed" if not problems else f"{len(problems)} problem(s)"))
    for problem in problems:
        print(f"  - {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
