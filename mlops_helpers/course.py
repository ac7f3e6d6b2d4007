"""The headless course runner: every notebook executed with papermill, exactly as CI does (used by all notebooks).

Command line (``make course`` calls the first form)::

    python -m mlops_helpers.course run [--only 01 02 ...] [--workspace DIR] [--notebooks DIR] [-p NAME VALUE ...]
    python -m mlops_helpers.course refresh [--only 01 ...]   # maintainers: re-execute and commit with outputs
    python -m mlops_helpers.course list
    python -m mlops_helpers.course install-kernel

``run`` executes the notebooks in order in one workspace (default: a fresh ``workspace/headless``, emptied first;
an explicit ``--workspace`` is reused as it is, so a second run shows that the notebooks are re-runnable;
``--notebooks student`` runs the student edition of ``make student`` instead of ``notebooks/``). Executed
copies are written to ``<workspace>/executed/``. ``-p NAME VALUE`` is passed to every notebook whose parameters
cell declares NAME. The table at the end gives each notebook's status and seconds; a failure names the notebook and
the cell, keeps the executed copy, and makes the exit code 1.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from mlops_helpers import REPO_ROOT
from mlops_helpers.workspace import ENV_VAR, quiet

NOTEBOOK_DIR = REPO_ROOT / "notebooks"
KERNEL_NAME = "mlops-course"
KERNEL_DISPLAY_NAME = "MLOps course"  # no Python version: the course runs on 3.11-3.13 and notebooks name it
DEFAULT_RUN_WORKSPACE = REPO_ROOT / "workspace" / "headless"


@dataclass
class Result:
    """How one notebook's headless run went."""

    notebook: str
    status: str  # "ok" or "failed"
    seconds: float
    output: str  # the executed copy
    error: str = ""  # for a failure: which cell, and the exception


def notebooks(only: list[str] | None = None, notebook_dir: Path | None = None) -> list[Path]:
    """The course notebooks (``NN_topic.ipynb``) in order; ``only`` keeps those whose name starts with a prefix."""
    found = sorted((notebook_dir or NOTEBOOK_DIR).glob("[0-9][0-9]_*.ipynb"))
    if not only:
        return found
    chosen = [p for p in found if any(p.name.startswith(prefix) for prefix in only)]
    unknown = [prefix for prefix in only if not any(p.name.startswith(prefix) for p in found)]
    if unknown:
        names = ", ".join(p.name for p in found)
        raise SystemExit(f"No notebook starts with {', '.join(unknown)}. The notebooks are: {names}")
    return chosen


def parse_value(text: str) -> object:
    """A parameter value from the command line: a Python literal (``3``, ``0.5``, ``True``, ``'x'``) or a string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def check_kernel(name: str = KERNEL_NAME) -> None:
    """Fail with the fix when the course's Jupyter kernel is not registered in this environment."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(name)
    except NoSuchKernel:
        raise SystemExit(
            f"The Jupyter kernel {name!r} is not registered. Run `make setup`, or in your environment "
            f"`python -m mlops_helpers.course install-kernel`."
        ) from None


def install_kernel() -> Path:
    """Register the course kernel inside this environment (``sys.prefix``), with telemetry off in its env."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "ipykernel",
            "install",
            "--sys-prefix",
            "--name",
            KERNEL_NAME,
            "--display-name",
            KERNEL_DISPLAY_NAME,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    spec_file = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json"
    spec = json.loads(spec_file.read_text())
    spec["env"] = {
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "DVC_NO_ANALYTICS": "1",
        "FEAST_USAGE": "False",
    }
    spec_file.write_text(json.dumps(spec, indent=1) + "\n")
    return spec_file


def leftover_processes(root: Path, wait: float = 15.0) -> list[str]:
    """Processes still running with ``COURSE_WORKSPACE=root`` after a notebook (servers it did not stop).

    Waits up to ``wait`` seconds for them to exit by themselves (a server may still be handling its SIGTERM), then
    kills the rest by PID, waits (up to 10 s) until they are gone, and returns their command lines, so that one
    notebook's leak cannot disturb the next.
    """
    import psutil

    me = os.getpid()
    mine = {me, *(p.pid for p in psutil.Process(me).parents())}

    def find() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter():
            if proc.pid in mine:
                continue
            try:
                if proc.environ().get(ENV_VAR) == str(root) and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        return found

    deadline = time.monotonic() + wait
    while (left := find()) and time.monotonic() < deadline:
        time.sleep(0.25)
    return _kill(left)


def _dead(proc) -> bool:
    """Gone, or a zombie: dead and waiting for its parent (or init) to reap it."""
    import psutil

    try:
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _kill(procs: list) -> list[str]:
    """Kill ``procs`` by PID and return their command lines once they are dead (up to 10 s: SIGKILL is not instant on
    a busy machine, and the next look must find nothing)."""
    import psutil

    described, killed = [], []
    for proc in procs:
        try:
            described.append(f"pid {proc.pid}: {' '.join(proc.cmdline())[:200]}")
            proc.kill()
            killed.append(proc)
        except psutil.NoSuchProcess:
            continue
    deadline = time.monotonic() + 10
    while not all(_dead(p) for p in killed) and time.monotonic() < deadline:
        time.sleep(0.1)
    return described


def _describe_failure(exc: Exception) -> str:
    cell = getattr(exc, "cell_index", None)
    count = getattr(exc, "exec_count", None)
    ename, evalue = getattr(exc, "ename", type(exc).__name__), getattr(exc, "evalue", str(exc))
    where = f"cell {cell} of the executed copy (execution count {count})" if cell is not None else "before any cell ran"
    return f"{where}: {ename}: {str(evalue).strip().splitlines()[0] if str(evalue).strip() else ''}"


# nbclient waits 60 s for a kernel by default; on a loaded 2-core machine a kernel once took longer, and the run failed
# "before any cell ran".
KERNEL_START_TIMEOUT = 180


def run_notebook(path: Path, output: Path, parameters: dict[str, object], *, timeout: int, log_output: bool) -> Result:
    """Execute one notebook with papermill into ``output``, in the notebooks folder, with the course kernel."""
    import papermill as pm

    declared = {name for name in pm.inspect_notebook(str(path))}
    params = {k: v for k, v in parameters.items() if k in declared}
    started = time.perf_counter()
    try:
        pm.execute_notebook(
            str(path),
            str(output),
            parameters=params,
            kernel_name=KERNEL_NAME,
            cwd=str(path.parent),
            progress_bar=False,
            log_output=log_output,
            execution_timeout=timeout,
            start_timeout=KERNEL_START_TIMEOUT,
        )
    except Exception as exc:  # papermill's PapermillExecutionError, a dead kernel, a timeout
        return Result(path.name, "failed", time.perf_counter() - started, str(output), _describe_failure(exc))
    return Result(path.name, "ok", time.perf_counter() - started, str(output))


def format_table(results: list[Result]) -> str:
    """The run's table: notebook, status, seconds (and what failed where)."""
    width = max([len("notebook"), *(len(r.notebook) for r in results)])
    lines = [f"{'notebook':<{width}}  status  seconds", f"{'-' * width}  ------  -------"]
    for r in results:
        lines.append(f"{r.notebook:<{width}}  {r.status:<6}  {r.seconds:7.1f}")
    total = sum(r.seconds for r in results)
    lines.append(f"{'total':<{width}}  {'':<6}  {total:7.1f}")
    for r in results:
        if r.status != "ok":
            lines.append(f"\nFAILED {r.notebook} in {r.error}\n  executed copy kept for inspection: {r.output}")
    return "\n".join(lines)


def run(
    only: list[str] | None = None,
    workspace: str | Path | None = None,
    parameters: dict[str, object] | None = None,
    *,
    fail_fast: bool = False,
    timeout: int = 600,
    log_output: bool = False,
    notebook_dir: Path | None = None,
) -> list[Result]:
    """Execute the chosen notebooks in order in one workspace; return one :class:`Result` each."""
    paths = notebooks(only, notebook_dir)
    parameters = parameters or {}
    if parameters:
        import papermill as pm

        declared = set().union(*(pm.inspect_notebook(str(p)).keys() for p in paths))
        unknown = sorted(set(parameters) - declared)
        if unknown:
            raise SystemExit(
                f"No chosen notebook declares the parameter(s) {', '.join(unknown)} in its parameters cell."
            )
    check_kernel()
    if workspace is None:
        root = DEFAULT_RUN_WORKSPACE
        if root.exists():
            shutil.rmtree(root)  # the runner's own folder: always fresh
    else:
        root = Path(workspace).expanduser().resolve()
    executed = root / "executed"
    executed.mkdir(parents=True, exist_ok=True)
    quiet()
    os.environ[ENV_VAR] = str(root)  # the kernels inherit it: every notebook uses this workspace
    results = []
    for path in paths:
        print(f"running {path.name} ...", flush=True)
        result = run_notebook(path, executed / path.name, parameters, timeout=timeout, log_output=log_output)
        left = leftover_processes(root)
        if left and result.status == "ok":
            result.status = "failed"
            result.error = f"left {len(left)} process(es) running (now killed): {'; '.join(left)}"
        print(
            f"  {result.status} in {result.seconds:.1f} s" + (f" - {result.error}" if result.error else ""), flush=True
        )
        results.append(result)
        if fail_fast and result.status != "ok":
            break
    (executed / "summary.json").write_text(json.dumps([asdict(r) for r in results], indent=1) + "\n")
    return results


def clean_executed(source: Path, executed: Path) -> dict:
    """The executed notebook ready to commit: papermill's metadata and injected cell removed, ids kept from source.

    Outputs and execution counts stay: committed notebooks read well on GitHub and nbval checks them.
    """
    import nbformat

    original = nbformat.read(source, as_version=4)
    nb = nbformat.read(executed, as_version=4)
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    if len(nb.cells) != len(original.cells):
        raise ValueError(f"{executed.name}: {len(nb.cells)} cells, but the source has {len(original.cells)}")
    nb.metadata.pop("papermill", None)
    nb.metadata["kernelspec"] = original.metadata.get("kernelspec", nb.metadata.get("kernelspec"))
    nb.metadata["kernelspec"]["display_name"] = KERNEL_DISPLAY_NAME
    for cell, source_cell in zip(nb.cells, original.cells, strict=True):
        cell.metadata.pop("papermill", None)
        cell.metadata.pop("execution", None)
        cell["id"] = source_cell.get("id", cell.get("id"))
        if cell.cell_type == "code":
            cell["execution_count"] = cell.get("execution_count")
    return nb


def refresh(only: list[str] | None = None, notebook_dir: Path | None = None) -> list[Result]:
    """Re-execute notebooks with their default parameters in a fresh workspace and write them back with outputs.

    This is how a maintainer commits a notebook after editing it (``make refresh NB=01``); nbval then checks that a
    fresh run reproduces what was committed.
    """
    import nbformat

    results = run(only, None, None, notebook_dir=notebook_dir, fail_fast=True)
    for result in results:
        if result.status == "ok":
            source = (notebook_dir or NOTEBOOK_DIR) / result.notebook
            nbformat.write(clean_executed(source, Path(result.output)), source)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_helpers.course", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="execute the notebooks headless with papermill")
    run_p.add_argument("--only", nargs="+", metavar="NN", help="notebook name prefixes, e.g. --only 00 01")
    run_p.add_argument("--workspace", help="workspace folder (default: a fresh workspace/headless)")
    run_p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        default=[],
        metavar=("NAME", "VALUE"),
        help="a notebook parameter, passed to every notebook that declares it",
    )
    run_p.add_argument("--notebooks", type=Path, help="the folder of notebooks to run (default: notebooks/)")
    run_p.add_argument("--fail-fast", action="store_true", help="stop at the first failing notebook")
    run_p.add_argument("--timeout", type=int, default=600, help="seconds a single cell may take (default 600)")
    run_p.add_argument("--log-output", action="store_true", help="stream the notebooks' outputs while running")
    refresh_p = sub.add_parser("refresh", help="re-execute notebooks and write them back with their outputs")
    refresh_p.add_argument("--only", nargs="+", metavar="NN", help="notebook name prefixes (default: all)")
    sub.add_parser("list", help="list the notebooks and their parameters")
    sub.add_parser("install-kernel", help=f"register the {KERNEL_NAME!r} Jupyter kernel in this environment")
    args = parser.parse_args(argv)

    if args.command == "install-kernel":
        print(f"registered kernel {KERNEL_NAME!r}: {install_kernel()}")
        return 0
    if args.command == "list":
        import papermill as pm

        for path in notebooks():
            params = ", ".join(f"{k}={v['default']}" for k, v in pm.inspect_notebook(str(path)).items())
            print(f"{path.name}: {params}")
        return 0
    if args.command == "refresh":
        results = refresh(args.only)
        print()
        print(format_table(results))
        return 0 if results and all(r.status == "ok" for r in results) else 1
    parameters = {name: parse_value(value) for name, value in args.parameter}
    results = run(
        args.only,
        args.workspace,
        parameters,
        fail_fast=args.fail_fast,
        timeout=args.timeout,
        log_output=args.log_output,
        notebook_dir=args.notebooks.resolve() if args.notebooks else None,
    )
    print()
    print(format_table(results))
    return 0 if results and all(r.status == "ok" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
