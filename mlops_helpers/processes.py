"""Background servers on loopback: start, wait until they answer, stop by PID (introduced in notebook 02).

Every server the course starts (``mlflow server``, ``mlflow models serve``, the prediction service, Prometheus,
Alertmanager) goes through :func:`start`:

- it binds ``127.0.0.1`` on a free port (the command gets the port through a ``{port}`` placeholder, and the host
  through ``{host}``; no other brace is touched, so PromQL, JSON or a receiver's ``{notification}`` pass as written);
- :meth:`Server.wait_ready` polls until the server answers, and on a timeout or an early exit raises
  :class:`ServerError` with the tail of the server's log;
- :meth:`Server.stop` sends SIGTERM to the process and every child it started (found by PID, in its own process
  group), waits, then SIGKILLs what is left. Used as a context manager it runs even when a cell fails, and an
  ``atexit`` hook stops anything still running when the interpreter (the notebook kernel) exits, and a small
  watchdog process stops the server if the interpreter dies without running its exit hooks (killed by a signal).

:func:`start_job` runs a command that ends by itself (a script) the same way, in the background: start it early,
collect it with :meth:`Job.wait`.

Processes are never looked up or killed by name.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from mlops_helpers.workspace import QUIET_ENV, default_root

HOST = "127.0.0.1"

#: A tiny process started beside each server: when the process that started the server dies without stopping it
#: (a notebook kernel killed before its exit hooks finished, say), it stops the server's process group.
WATCHDOG = """
import os, signal, sys, time
parent, group = int(sys.argv[1]), int(sys.argv[2])
def exists(kill, target):
    try:
        kill(target, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
while exists(os.kill, parent):
    if not exists(os.killpg, group):
        sys.exit(0)
    time.sleep(0.5)
for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 0)):
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        sys.exit(0)
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline and exists(os.killpg, group):
        time.sleep(0.2)
"""
_running: dict[int, Server] = {}
_lock = threading.Lock()


class ServerError(RuntimeError):
    """A background server did not start, or did not answer in time. The message ends with its log's tail."""


def free_port(host: str = HOST) -> int:
    """A TCP port that is free on ``host`` right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def port_is_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) != 0


def venv_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the running interpreter's bin folder first on PATH, quiet settings applied.

    ``mlflow models serve`` and other console scripts call ``uvicorn``/``gunicorn`` through the shell: a kernel
    started from the course venv does not put the venv's ``bin`` on PATH by itself.
    """
    env = dict(os.environ)
    env.update(QUIET_ENV)
    # Python 3.13 colours tracebacks (ANSI escapes) when FORCE_COLOR is set, as some terminals and CI runners do: a
    # server's log is read as text (notebook 04 finds the "ValueError" line of a failed start), so never in colour.
    env["PYTHON_COLORS"] = "0"
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bin_dir, *(p for p in env.get("PATH", "").split(os.pathsep) if p != bin_dir)])
    if extra:
        env.update(extra)
    return env


#: Set by ``make lab`` (scripts/lab.py) when jupyter-server-proxy is installed: the path under which the lab's
#: Jupyter server proxies a local port (``/proxy/`` + port + ``/``); on a JupyterHub, JUPYTERHUB_SERVICE_PREFIX does.
LAB_PROXY_ENV = "COURSE_LAB_PROXY"


def lab_proxy() -> str | None:
    """The path prefix under which the Jupyter server running this kernel proxies local ports, or None outside a lab.

    ``/proxy/`` under ``make lab`` with jupyter-server-proxy, ``/user/alice/proxy/`` on a JupyterHub (whose admin
    installs jupyter-server-proxy, see docs/instructor-guide.md); None under papermill, nbval or plain ``jupyter lab``.
    """
    if os.environ.get(LAB_PROXY_ENV):
        return "/" + os.environ[LAB_PROXY_ENV].strip("/") + "/"
    hub = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    return f"{hub.rstrip('/')}/proxy/" if hub else None


def web_url_flags() -> list[str]:
    """Prometheus' and Alertmanager's flags that make their pages work through the lab's proxy; ``[]`` outside one.

    The proxy strips ``<prefix><port>`` from the path, so the server keeps its routes at ``/`` (``--web.route-prefix``)
    but writes its links and asset paths under the proxied path (the path of ``--web.external-url``, which both
    require to be an absolute http URL). Without them the pages' assets point at the lab's own ``/classic/static/``.
    """
    prefix = lab_proxy()
    if prefix is None:
        return []
    return [f"--web.external-url=http://{HOST}:{{port}}{prefix}{{port}}/", "--web.route-prefix=/"]


def page_url(url: str, path: str = "") -> str:
    """Where a browser opens ``path`` of the server at ``url``: through the lab's proxy (a path on the lab's own
    address, e.g. ``/proxy/40123/classic/graph``) when there is one, else the server's own address."""
    prefix = lab_proxy()
    if prefix is None:
        return f"{url.rstrip('/')}/{path}"
    port = urllib.parse.urlsplit(url).port
    return f"{prefix}{port}/{path}"


def fill_placeholders(part: str, port: int) -> str:
    """``part`` with ``{port}`` and ``{host}`` filled in. Nothing else changes: not ``str.format``, so other braces
    (``{notification}`` for the alert receiver, a PromQL selector, a JSON body) need no doubling."""
    return part.replace("{port}", str(port)).replace("{host}", HOST)


class Server:
    """A background process listening on ``127.0.0.1:port``. Create it with :func:`start`."""

    def __init__(
        self,
        command: Sequence[str],
        *,
        name: str,
        port: int,
        health_path: str | None,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> None:
        self.name = name
        self.port = port
        self.health_path = health_path
        self.log_path = log_path
        self.command = [fill_placeholders(part, port) for part in command]
        self._env = venv_env(env)
        self._cwd = str(cwd) if cwd else None
        self.process: subprocess.Popen | None = None
        self.watchdog: subprocess.Popen | None = None

    # -- facts
    @property
    def url(self) -> str:
        """The server's base URL, e.g. ``http://127.0.0.1:51234``."""
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def alive(self) -> bool:
        """True while the main process has not exited."""
        return self.process is not None and self.process.poll() is None

    def tree(self) -> list[int]:
        """The PIDs of the process and every child it started (uvicorn workers, say), while it runs."""
        if self.process is None:
            return []
        try:
            main = psutil.Process(self.process.pid)
            return [main.pid, *(child.pid for child in main.children(recursive=True))]
        except psutil.NoSuchProcess:
            return []

    def log_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the server's combined stdout and stderr."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log written)"
        return "\n".join(text.splitlines()[-lines:])

    def __repr__(self) -> str:
        state = "running" if self.alive else "stopped"
        return f"<Server {self.name} {state} on {self.url} pid={self.pid}>"

    # -- life cycle
    def launch(self) -> Server:
        """Start the process (in its own process group, output to the log file)."""
        if self.alive:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            try:
                self.process = subprocess.Popen(
                    self.command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    env=self._env,
                    cwd=self._cwd,
                    start_new_session=True,
                )
            except FileNotFoundError as exc:
                raise ServerError(
                    f"{self.name}: cannot start {self.command[0]!r}: not found on PATH. Is it installed "
                    f"(make setup), or for a system tool, see the README's troubleshooting?"
                ) from exc
        self.watchdog = subprocess.Popen(
            [sys.executable, "-c", WATCHDOG, str(os.getpid()), str(self.process.pid)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        with _lock:
            _running[self.process.pid] = self
        return self

    def answers(self) -> bool:
        """True when the server accepts a connection (and, with a health path, answers it with a status < 500)."""
        if self.health_path is None:
            return not port_is_free(self.port)
        try:
            with urllib.request.urlopen(self.url + self.health_path, timeout=2) as response:
                return response.status < 500
        except urllib.error.HTTPError as exc:
            return exc.code < 500
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            return False

    def wait_ready(self, timeout: float = 60.0, interval: float = 0.2) -> Server:
        """Block until the server answers. On early exit or timeout, stop it and raise with its log's tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive:
                code = self.process.returncode if self.process else None
                self.stop()
                raise ServerError(
                    f"{self.name} exited with code {code} before answering on {self.url}.\n"
                    f"Command: {' '.join(self.command)}\nLast lines of {self.log_path}:\n{self.log_tail()}"
                )
            if self.answers():
                return self
            time.sleep(interval)
        self.stop()
        raise ServerError(
            f"{self.name} did not answer on {self.url}{self.health_path or ''} within {timeout:.0f} s "
            f"(stopped it). Last lines of {self.log_path}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        """Stop the process and all its children by PID: SIGTERM, wait up to ``timeout`` s, then SIGKILL.

        Returns the main process's exit code (None if it was never started). Safe to call twice.
        """
        if self.process is None:
            return None
        if self.watchdog is not None:  # stopped on purpose: the watchdog must not act on a reused group id later
            self.watchdog.kill()
            self.watchdog.wait()
        pid = self.process.pid
        try:
            main = psutil.Process(pid)
            family = [main, *main.children(recursive=True)]
        except psutil.NoSuchProcess:
            main, family = None, []
        # The process group first (covers children that forked after we looked), then each PID we know of.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, alive = psutil.wait_procs(family, timeout=timeout)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        psutil.wait_procs(alive, timeout=5)
        # psutil reaped the main process (so Popen cannot): take its exit code from psutil, negative for a signal.
        if self.process.returncode is None:
            self.process.returncode = getattr(main, "returncode", None) if main else self.process.poll()
        code = self.process.returncode
        with _lock:
            _running.pop(pid, None)
        return code

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start(
    command: Sequence[str],
    *,
    name: str,
    port: int | None = None,
    health_path: str | None = "/",
    timeout: float = 60.0,
    log_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Server:
    """Start ``command`` in the background on ``127.0.0.1`` and wait until it answers.

    ``command`` may contain ``{port}`` (and ``{host}``), filled with a free port unless ``port`` is given; every other
    brace is passed on as written.
    ``health_path`` is polled over HTTP (any status below 500 counts as ready); ``None`` waits for the port to accept
    connections. The log goes to ``<log_dir>/<name>.log`` (default: the workspace's ``logs/``). Use the result as a
    context manager, or call its ``stop()``::

        with start(["mlflow", "server", "--host", "{host}", "--port", "{port}"], name="mlflow-server") as server:
            ...  # server.url
    """
    chosen = port or free_port()
    if not port_is_free(chosen):
        raise ServerError(f"{name}: port {chosen} on {HOST} is already in use; leave `port` unset to get a free one.")
    logs = Path(log_dir) if log_dir else default_root() / "logs"
    server = Server(
        command, name=name, port=chosen, health_path=health_path, log_path=logs / f"{name}.log", env=env, cwd=cwd
    )
    server.launch()
    try:
        server.wait_ready(timeout)
    except BaseException:
        server.stop()
        raise
    return server


def all_exited(pids: list[int]) -> bool:
    """True when none of ``pids`` is still running (a zombie awaiting its parent's reaping counts as exited)."""
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
        except psutil.NoSuchProcess:
            continue
    return True


def running() -> list[Server]:
    """The servers started by this interpreter that have not been stopped."""
    with _lock:
        return [s for s in _running.values() if s.alive]


def stop_all() -> None:
    """Stop every server this interpreter started. Registered with ``atexit``."""
    with _lock:
        servers = list(_running.values())
    for server in servers:
        server.stop()


def reap_interrupted(result: object) -> None:
    """After a cell that ended in KeyboardInterrupt, kill and reap the child processes it was waiting on.

    ``subprocess.run`` interrupted (the kernel's interrupt button, which signals the kernel's process group) kills
    its child but, by design, does not wait for it: the child stays a zombie until the kernel exits, held by the
    ``Popen`` object in the traceback IPython keeps. This IPython ``post_run_cell`` hook finds the ``Popen`` objects
    in that traceback's ``subprocess`` frames and waits for each (``Popen.wait``: the exit code stays correct;
    nothing is looked up by name or reaped behind its owner's back).
    """
    error = getattr(result, "error_in_exec", None)
    if not isinstance(error, KeyboardInterrupt):
        return
    seen: set[int] = set()
    tb = error.__traceback__
    while tb is not None:
        # Only frames of the subprocess module (run, call, check_output, communicate): a Popen the learner holds in
        # a variable of their own, or a server started by this module, is theirs to stop, and is left alone.
        if tb.tb_frame.f_code.co_filename != subprocess.__file__:
            tb = tb.tb_next
            continue
        for value in list(tb.tb_frame.f_locals.values()):
            if isinstance(value, subprocess.Popen) and id(value) not in seen:
                seen.add(id(value))
                if value.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        value.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    value.wait(timeout=5)
        tb = tb.tb_next


def _register_ipython_hook() -> None:
    """Register :func:`reap_interrupted` once when imported inside an IPython kernel (nothing happens elsewhere)."""
    ipython_module = sys.modules.get("IPython")
    shell = ipython_module.get_ipython() if ipython_module is not None else None
    if shell is None or getattr(shell, "_course_reaps_interrupted", False):
        return
    shell.events.register("post_run_cell", reap_interrupted)
    shell._course_reaps_interrupted = True


atexit.register(stop_all)


class JobError(RuntimeError):
    """A background job failed or ran out of time. The message ends with its log's tail."""


class Job(Server):
    """A background command that ends by itself (a script, a CLI call), not a server: it listens on no port.

    It starts like a server (own process group, log file, watchdog, stopped by PID at exit) so a notebook can start
    a slow command early, go on with other cells, and collect the result later with :meth:`wait`.
    """

    def __init__(self, command: Sequence[str], *, name: str, log_path: Path, env=None, cwd=None) -> None:
        command = [str(part) for part in command]  # paths welcome
        super().__init__(command, name=name, port=0, health_path=None, log_path=log_path, env=env, cwd=cwd)

    def __repr__(self) -> str:
        return f"<Job {self.name} {'running' if self.alive else 'ended'} pid={self.pid}>"

    def wait(self, timeout: float = 300.0) -> Job:
        """Block until the command ends. A non-zero exit or a timeout stops it (by PID) and raises :class:`JobError`
        with the log's tail; on success the job is forgotten (nothing is left to stop)."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise JobError(f"{self.name} still ran after {timeout:.0f} s (stopped it). Last lines of "
                           f"{self.log_path}:\n{self.log_tail()}") from None  # fmt: skip
        self.stop()  # reaps it, stops the watchdog, and any child it left behind
        if code != 0:
            raise JobError(f"{self.name} exited with code {code}.\nCommand: {' '.join(self.command)}\n"
                           f"Last lines of {self.log_path}:\n{self.log_tail()}")  # fmt: skip
        return self


def start_job(
    command: Sequence[str],
    *,
    name: str,
    log_dir: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
) -> Job:
    """Start ``command`` in the background and return at once; collect it later with ``job.wait()``.

    The environment is this one with the course's quiet settings (telemetry off) and ``env`` on top; the log goes to
    ``<log_dir>/<name>.log`` (default: the workspace's ``logs/``), started afresh. Use it as a context manager to stop
    it (by PID) if a cell fails before it is collected::

        job = start_job([python, "build.py"], name="feast", cwd=folder)
        ...  # other cells
        job.wait()
    """
    logs = Path(log_dir) if log_dir else default_root() / "logs"
    log_path = logs / f"{name}.log"
    log_path.unlink(missing_ok=True)
    return Job(command, name=name, log_path=log_path, env=env, cwd=cwd).launch()


_register_ipython_hook()
