"""Background servers: started on a free loopback port, ready when they answer, stopped by PID with their children."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import urllib.request

import psutil
import pytest

from mlops_helpers import processes
from mlops_helpers.processes import ServerError

HTTP_SERVER = [sys.executable, "-m", "http.server", "{port}", "--bind", "{host}"]


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def _script(tmp_path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_start_answer_and_stop(tmp_workspace):
    server = processes.start(HTTP_SERVER, name="http", timeout=20)
    try:
        assert server.url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(server.url + "/", timeout=5) as response:
            assert response.status == 200
        assert server in processes.running()
        pid, port = server.pid, server.port
    finally:
        server.stop()
    assert _gone(pid) and processes.port_is_free(port)
    assert server not in processes.running()
    assert (tmp_workspace / "logs" / "http.log").exists()
    server.stop()  # a second stop is harmless


def test_only_port_and_host_are_filled_in(tmp_path):
    command = ["prog", "--port={port}", "{host}:{port}", "--reason", "alert {alertname}: {notification}",
               '{"a": 1}', 'up{job="x"}', "{{port}}"]  # fmt: skip
    server = processes.Server(command, name="fill", port=8123, health_path=None, log_path=tmp_path / "fill.log")
    assert server.command == ["prog", "--port=8123", "127.0.0.1:8123", "--reason", "alert {alertname}: {notification}",
                              '{"a": 1}', 'up{job="x"}', "{8123}"]  # fmt: skip


def test_context_manager_stops_even_when_the_body_fails(tmp_workspace):
    with pytest.raises(RuntimeError, match="cell failed"), processes.start(HTTP_SERVER, name="http-ctx") as server:
        pid, port = server.pid, server.port
        raise RuntimeError("cell failed")
    assert _gone(pid) and processes.port_is_free(port)


def test_children_are_stopped_too_even_in_their_own_session(tmp_path, tmp_workspace):
    script = _script(
        tmp_path,
        "parent.py",
        """
        import subprocess, sys, http.server, socketserver
        port = int(sys.argv[1])
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"], start_new_session=True)
        http.server.ThreadingHTTPServer(("127.0.0.1", port), http.server.SimpleHTTPRequestHandler).serve_forever()
        """,
    )
    server = processes.start([sys.executable, script, "{port}"], name="parent", timeout=20)
    children = psutil.Process(server.pid).children(recursive=True)
    assert len(children) == 2
    server.stop()
    assert all(_gone(child.pid) for child in children)


def test_a_process_ignoring_sigterm_is_killed(tmp_path, tmp_workspace):
    script = _script(
        tmp_path,
        "stubborn.py",
        """
        import signal, socket, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        sock = socket.socket(); sock.bind(("127.0.0.1", int(sys.argv[1]))); sock.listen()
        time.sleep(300)
        """,
    )
    server = processes.start([sys.executable, script, "{port}"], name="stubborn", health_path=None, timeout=20)
    assert server.stop(timeout=1) == -9
    assert _gone(server.pid)


def test_timeout_reports_the_log_tail_and_stops(tmp_path, tmp_workspace):
    script = _script(tmp_path, "slow.py", "print('booting slowly', flush=True)\nimport time\ntime.sleep(300)\n")
    with pytest.raises(ServerError, match=r"(?s)did not answer.*within 1 s.*booting slowly") as info:
        processes.start([sys.executable, script], name="slow", timeout=1)
    assert "stopped it" in str(info.value)
    assert not processes.running()


def test_early_exit_reports_code_and_log(tmp_workspace):
    command = [sys.executable, "-c", "import sys; print('bad config: no such file'); sys.exit(3)"]
    with pytest.raises(ServerError, match=r"(?s)exited with code 3.*bad config: no such file"):
        processes.start(command, name="broken", timeout=20)


def test_missing_program_is_a_clear_error(tmp_workspace):
    with pytest.raises(ServerError, match="not found on PATH"):
        processes.start(["no-such-program-for-the-course", "{port}"], name="missing")


def test_taken_port_is_refused(tmp_workspace):
    with processes.start(HTTP_SERVER, name="first") as first, pytest.raises(ServerError, match="already in use"):
        processes.start(HTTP_SERVER, name="second", port=first.port)


def test_servers_are_stopped_when_the_interpreter_exits(tmp_path, tmp_workspace):
    script = _script(
        tmp_path,
        "leaves_it_running.py",
        """
        import sys
        from mlops_helpers import processes
        server = processes.start([sys.executable, "-m", "http.server", "{port}", "--bind", "{host}"], name="left")
        print(server.pid, server.port, flush=True)
        """,
    )
    done = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=60, check=True)
    pid, port = map(int, done.stdout.split())
    assert _gone(pid) and processes.port_is_free(port)


def test_venv_bin_comes_first_on_path():
    env = processes.venv_env({"EXTRA": "1"})
    assert env["PATH"].split(":")[0] == str(processes.Path(sys.executable).parent)
    assert env["EXTRA"] == "1" and env["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_free_port_is_free():
    assert processes.port_is_free(processes.free_port())


def test_the_watchdog_stops_servers_when_their_starter_is_killed(tmp_path, tmp_workspace):
    script = _script(
        tmp_path,
        "killed.py",
        """
        import os, signal, sys
        from mlops_helpers import processes
        server = processes.start([sys.executable, "-m", "http.server", "{port}", "--bind", "{host}"], name="orphan")
        print(server.pid, server.port, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # no atexit hook runs
        """,
    )
    done = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -9
    pid, port = map(int, done.stdout.split())
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not _gone(pid):
        time.sleep(0.2)
    assert _gone(pid) and processes.port_is_free(port)


def test_a_stopped_server_leaves_no_watchdog(tmp_workspace):
    server = processes.start(HTTP_SERVER, name="watched")
    watchdog = server.watchdog
    assert watchdog is not None and watchdog.poll() is None
    server.stop()
    assert watchdog.poll() is not None


def test_a_job_runs_in_the_background_with_the_quiet_settings_and_is_collected(tmp_path, tmp_workspace):
    command = [sys.executable, "-c", "import os, time; time.sleep(0.5); print('usage', os.environ['FEAST_USAGE'])"]
    job = processes.start_job(command, name="job", cwd=tmp_path)
    assert job.alive and job in processes.running()  # start_job returned while it runs
    assert job.wait(timeout=20) is job
    assert not job.alive and not processes.running() and _gone(job.pid)
    assert job.log_tail() == "usage False"  # telemetry off for the tools it runs (Feast's switch)


def test_a_failed_or_slow_job_raises_with_its_log_and_is_stopped(tmp_path, tmp_workspace):
    failing = processes.start_job([sys.executable, "-c", "print('no repo here'); raise SystemExit(2)"], name="bad")
    with pytest.raises(processes.JobError, match=r"(?s)exited with code 2.*no repo here"):
        failing.wait(timeout=20)
    slow = processes.start_job([sys.executable, "-c", "import time; time.sleep(300)"], name="slow", cwd=tmp_path)
    with pytest.raises(processes.JobError, match="still ran after 1 s"):
        slow.wait(timeout=1)
    assert not processes.running() and _gone(slow.pid) and _gone(failing.pid)


def _interrupt_a_waiting_subprocess_run(import_processes: bool) -> list[str]:
    """In a real kernel: a cell waits in ``subprocess.run`` on a child that outlives SIGINT (as 02's second client
    can, busy importing mlflow); the kernel is interrupted (its process group gets SIGINT, as the lab's button does).
    Returns the states of the kernel's child processes once the cell has ended."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3", startup_timeout=180)
    try:
        if import_processes:
            kc.execute_interactive("from mlops_helpers import processes", timeout=120)
        stubborn = (
            "import signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
        )
        msg_id = kc.execute(f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {stubborn!r}])")
        kernel = psutil.Process(km.provisioner.process.pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not kernel.children():
            time.sleep(0.1)
        assert kernel.children(), "the cell's child process never started"
        time.sleep(0.5)
        km.interrupt_kernel()
        while True:
            reply = kc.get_shell_msg(timeout=30)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        kc.execute_interactive("1", timeout=30)  # the next cell: post_run_cell hooks of the interrupted one are done
        return [child.status() for child in kernel.children()]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def test_an_interrupted_subprocess_run_leaves_a_zombie_without_the_hook():
    # The bug the hook fixes (issue 16, item 7): subprocess.run kills its child on KeyboardInterrupt but does not wait.
    assert psutil.STATUS_ZOMBIE in _interrupt_a_waiting_subprocess_run(import_processes=False)


def test_an_interrupted_subprocess_run_leaves_no_zombie_once_processes_is_imported():
    assert _interrupt_a_waiting_subprocess_run(import_processes=True) == []


def test_the_hook_leaves_a_learners_own_popen_alone():
    # Interrupting a cell must not stop a process the learner holds in a variable (only subprocess's own frames).
    class Result:
        pass

    own = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as exc:
            result = Result()
            result.error_in_exec = exc
        processes.reap_interrupted(result)
        assert own.poll() is None
    finally:
        own.kill()
        own.wait()
