"""Fault injection, the chosen cases: runs killed at stage boundaries and inside an alias move, two overlapping runs at
the timings that lost a promotion before, bad batch files, an oversized request against the live service.

Each case checks the invariants of ``benchmarks/faults.py`` (the same harness; ``make faults`` runs it with random
kill times and offsets): no promotion lost, the champion loads, the audit check exits 0 right after a crash, no
RUNNING run of a dead process, nothing a crashed run left once the next run (or ``pipeline recover``) ran. Runs are
real CLI processes with quick settings (a ridge model, no integration test); where two runs must overlap, a
``wait:`` failpoint holds the first at a chosen stage until the second is waiting, whatever the machine's speed.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import sys
import threading
import time

import pytest
import requests

from mlops_helpers import REPO_ROOT, pipeline, processes
from mlops_helpers.names import CHAMPION, MODEL_NAME, PIPELINE_EXPERIMENT, PREVIOUS
from mlops_helpers.registry import Registry
from mlops_helpers.serving.limits import MAX_BODY_BYTES

_spec = importlib.util.spec_from_file_location("faults_bench", REPO_ROOT / "benchmarks" / "faults.py")
faults = importlib.util.module_from_spec(_spec)
sys.modules["faults_bench"] = faults  # dataclasses look their module up while the module is being executed
_spec.loader.exec_module(faults)


@pytest.fixture(scope="module")
def bench(tmp_path_factory, module_tracking_env):
    """A workspace with a ridge champion and the batches (January-February, -May, -July)."""
    return faults.Bench(tmp_path_factory.mktemp("faults") / "workspace").build()


@pytest.fixture
def registry(bench):
    return Registry(MODEL_NAME)


# -- 2, 3: kills -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("point", "then"),
    [
        ("pipeline.before-register=kill", "next run"),  # holding the lease, nothing registered yet
        ("registry.after-register=kill", "recover"),  # a version registered, no alias: a half registration
        ("pipeline.before-promote=kill", "next run"),  # an untested challenger
        ("registry.after-alias=kill@3", "recover"),  # champion moved, its record never confirmed (the 10 ms window)
    ],
)
def test_a_killed_run_leaves_nothing_the_audit_or_the_next_run_gets_wrong(bench, registry, point, then, capsys):
    before = registry.state()
    killed = faults.Watched("A", bench.start("jan-may", faults.PROMOTE, point)).finish()
    assert killed.killed, killed.output
    assert faults.right_after_a_crash(registry) == []  # audit exits 0, the champion loads
    assert pipeline.main(["status"]) == 0
    shown = json.loads(capsys.readouterr().out)["leftovers"]
    assert any("RUNNING" in line for line in shown) and any("lease of a crashed writer" in line for line in shown)
    if then == "next run":
        refused = ["run", "--data", str(bench.batches / "jan-may.csv"), *faults.REFUSE]
        assert pipeline.main(refused) == pipeline.EXIT_CODES["evaluate"]
        assert "recovered: took over the registry lease" in capsys.readouterr().out
    else:
        assert pipeline.main(["recover"]) == 0
        assert "recovered: ended pipeline run" in capsys.readouterr().out
    assert faults.invariants(registry, [killed]) == []
    assert registry.state() == before  # the killed run's work is undone: aliases and versions as they were


# -- 1: overlaps -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("second", "second_args"),
    [("jan-jul", "promote"), ("jan-jul", "refuse")],
    ids=["second-starts-while-the-first-promotes", "slow-refused-second-started-just-after"],
)
def test_two_overlapping_runs_lose_no_promotion(bench, registry, tmp_path, second, second_args):
    go = tmp_path / "go"
    first = faults.Watched("A", bench.start("jan-may", faults.PROMOTE, f"pipeline.before-promote=wait:{go}"))
    assert first.wait_for("[4/6] register"), first.lines  # A holds the lease and has registered its version
    args = faults.PROMOTE if second_args == "promote" else faults.REFUSE
    other = faults.Watched("B", bench.start(second, args, reason=f"overlap {tmp_path.name}"))
    assert other.wait_for("waiting for the registry lease"), other.lines  # B trained, and waits for A
    go.touch()
    a, b = first.finish(), other.finish()
    assert a.code == 0 and a.promoted, a.output
    if second_args == "promote":
        assert b.code == 0 and b.promoted, b.output
        champion = registry.version(CHAMPION)
        assert (champion.version, registry.aliases()[PREVIOUS]) == (int(b.promoted), a.promoted)
        gated_against = _run_of(f"overlap {tmp_path.name}").data.tags["pipeline.champion_version"]
        assert gated_against == a.promoted  # B's evaluation compared it with A's model, not the one before
    else:
        assert b.code == pipeline.EXIT_CODES["evaluate"], b.output
        assert registry.aliases()[CHAMPION] == a.promoted  # B's refusal undid nothing of A's
    assert faults.invariants(registry, [a, b]) == []


def _run_of(reason: str):
    """The pipeline run started with ``reason``."""
    import mlflow

    (found,) = mlflow.search_runs(
        experiment_names=[PIPELINE_EXPERIMENT],
        filter_string=f"tags.`pipeline.reason` = '{reason}'",
        output_format="list",
    )
    return found


# -- 5: bad batches --------------------------------------------------------------------------------------------------
BAD_FILES = {
    "empty": (b"", "the file is empty (0 bytes)", "a header line and at least 168 rows"),
    "latin-1": (None, "line 3, column 'weathersit': byte 0xe9 is not UTF-8", "save the file as UTF-8"),
    "header only": (None, "0 rows, at least 168 needed", "send at least 168 hourly rows"),
    "ragged": (None, "Expected 15 fields in line 5, saw 16", "as many comma-separated fields as the header"),
}


def _bad_file(bench, kind: str) -> bytes:
    good = (bench.batches / "jan-feb.csv").read_bytes().splitlines(keepends=True)
    if kind == "latin-1":
        assert b",clear," in good[2]  # the third line's weather, as the source writes it
        return b"".join([*good[:2], good[2].replace(b",clear,", ",cl\u00e9ar,".encode("latin-1")), *good[3:]])
    if kind == "header only":
        return good[0]
    if kind == "ragged":
        return b"".join([*good[:4], good[4].rstrip(b"\n") + b",1\n", *good[5:]])
    return BAD_FILES[kind][0]


@pytest.mark.parametrize("kind", BAD_FILES)
def test_a_bad_batch_says_what_is_wrong_what_to_do_and_where_the_report_is(bench, registry, kind, tmp_path, capsys):
    path = tmp_path / f"{kind}.csv"
    path.write_bytes(_bad_file(bench, kind))
    report = bench.root / "pipeline" / "validation.json"
    report.parent.mkdir(exist_ok=True)
    report.write_text(json.dumps({"ok": True, "rows": 3530, "violations": []}))  # a previous run's verdict
    before = registry.state()
    assert pipeline.main(["run", "--data", str(path), "--no-integration-test"]) == pipeline.EXIT_CODES["validate"]
    out = capsys.readouterr().out
    _, wrong, what_to_do = BAD_FILES[kind]
    assert "Traceback" not in out and "Error:" not in out
    assert wrong in out and "what to do: " in out and what_to_do in out
    assert f"report: {report}" in out
    written = json.loads(report.read_text())
    assert written["ok"] is False and written["data"] == str(path) and wrong in written["violations"][0]["detail"]
    assert registry.state() == before


# -- 4: the service and an oversized request -------------------------------------------------------------------------
def _send_oversized(url: str, chunked: bool) -> bytes:
    """POST a body over the limit as a slow client would (64 KiB at a time); the status line of the answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {8 * MAX_BODY_BYTES}"
        sock.sendall(
            f"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()
        )
        piece = b"x" * 65536
        with_framing = f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked else piece
        try:
            for _ in range(2 * MAX_BODY_BYTES // len(piece)):
                sock.sendall(with_framing)
                time.sleep(0.002)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused and closed: the answer is already there
        return sock.recv(4096).split(b"\r\n")[0]


def _probe(url: str, seconds: float) -> list[float]:
    timings = []
    with requests.Session() as http:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            assert http.get(f"{url}/health", timeout=10).status_code == 200
            timings.append((time.perf_counter() - started) * 1000)
            time.sleep(0.01)
    return timings


def test_health_is_not_held_by_an_oversized_request(bench, tmp_path):
    command = [sys.executable, "-m", "mlops_helpers.serving", "--model", f"models:/{MODEL_NAME}@champion",
               "--port", "{port}", "--log", str(tmp_path / "predictions.jsonl")]  # fmt: skip
    with processes.start(command, name="faults-service", health_path="/health", timeout=120) as service:
        _probe(service.url, 0.5)  # warm
        for chunked in (False, True):
            answers: list[bytes] = []
            sender = threading.Thread(
                target=lambda c=chunked, found=answers: found.append(_send_oversized(service.url, c))
            )
            sender.start()
            timings = _probe(service.url, 1.5)
            sender.join(timeout=60)
            # the reason phrase is the Python's own: "Request Entity Too Large" to 3.12, "Content Too Large" from 3.13
            assert len(answers) == 1 and answers[0].startswith(b"HTTP/1.1 413 "), answers
            # Not a speed target (those are figures, printed here): the check is that /health kept answering while
            # the body arrived. Before the limit, one 66 MB body held /health for 2.5 s; 1 s is far above the
            # scheduler's noise on a loaded 2-core machine (a load of 8 gave at most 0.12 s).
            quick = sum(t < 50 for t in timings) / len(timings)
            print(f"chunked={chunked}: {len(timings)} answers, {quick:.0%} within 50 ms, max {max(timings):.0f} ms")
            assert len(timings) >= 20 and max(timings) < 1000, (chunked, len(timings), sorted(timings)[-5:])
