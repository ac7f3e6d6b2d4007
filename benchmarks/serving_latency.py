"""Single-row latency and throughput: `mlflow models serve` against the course's service, on the same champion.

The course's service is measured on each protocol it speaks: its own `/predict`, MLflow's scoring protocol
(`/invocations`, the same body `mlflow models serve` gets) and the Open Inference Protocol v2
(`/v2/models/{name}/infer`, one tensor per column as MLServer's pandas codec sends a row).

    make bench                      # or: .venv/bin/python benchmarks/serving_latency.py [--requests 2000] [--clients 4]

Both servers are started on loopback through `mlops_helpers.processes`, serve `models:/citybikes-demand@champion`
from one workspace (``workspace/bench``, the champion is rebuilt there if missing), get the same warm-up, then
N sequential single-row requests each over one keep-alive session (p50, p99, requests per second), then the same
number of requests from a few concurrent clients (throughput). Prints a Markdown table for the README.
A measurement, not a test: nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import requests

from mlops_helpers import REPO_ROOT, catchup, data, processes, workspace
from mlops_helpers.names import MODEL_NAME

URI = f"models:/{MODEL_NAME}@champion"


def v2_body(record: dict) -> dict:
    """One row as an OIP v2 inference request: one FP64 tensor of shape [1] per column."""
    return {"inputs": [{"name": k, "shape": [1], "datatype": "FP64", "data": [v]} for k, v in record.items()]}


def one_row() -> dict:
    """A real hour of March 2011, as the JSON record both servers accept."""
    bikes = data.load_bikes()
    X, _ = data.xy(data.window(bikes, data.VALIDATION_START, data.TRAIN_WINDOW.end))
    return X.iloc[0].to_dict()


def sequential(url: str, body: dict, n: int, warmup: int) -> list[float]:
    """Latencies in ms of ``n`` sequential requests over one keep-alive session (after ``warmup`` unmeasured ones)."""
    timings = []
    with requests.Session() as session:
        for i in range(warmup + n):
            started = time.perf_counter()
            response = session.post(url, json=body, timeout=10)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            if i >= warmup:
                timings.append(elapsed)
    return timings


def concurrent(url: str, body: dict, n: int, clients: int) -> float:
    """Requests per second when ``clients`` threads share ``n`` requests, each with its own session."""
    per_client = n // clients
    errors = []

    def client() -> None:
        with requests.Session() as session:
            for _ in range(per_client):
                if session.post(url, json=body, timeout=10).status_code != 200:
                    errors.append(1)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} failed requests under concurrency")
    return per_client * clients / elapsed


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per server (default 2000)")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients for the throughput column")
    parser.add_argument("--workspace", default=str(REPO_ROOT / "workspace" / "bench"))
    args = parser.parse_args(argv)

    ws = workspace.setup(args.workspace)
    champion = catchup.ensure_champion(ws)
    record = one_row()
    servers = {
        "mlflow models serve": (
            ["mlflow", "models", "serve", "-m", URI, "--env-manager", "local", "--host", "{host}", "--port", "{port}"],
            "/ping",
            "/invocations",
            {"dataframe_records": [record]},
        ),
        "course service, /predict": (
            [sys.executable, "-m", "mlops_helpers.serving", "--model", URI, "--port", "{port}",
             "--log", str(ws.path("bench", "predictions.jsonl"))],
            "/health",
            "/predict",
            record,
        ),
    }  # fmt: skip
    course = servers["course service, /predict"]
    servers["course service, /invocations"] = (course[0], course[1], "/invocations", {"dataframe_records": [record]})
    servers["course service, /v2/.../infer"] = (course[0], course[1], f"/v2/models/{MODEL_NAME}/infer", v2_body(record))
    # Notebook 09's modes. The challenger is the champion loaded twice: the cost of routing and of a second predict
    # does not depend on which model it is.
    for mode in ("canary", "shadow"):
        servers[f"course service, {mode}"] = (
            [sys.executable, "-m", "mlops_helpers.serving", "--model", URI, "--challenger", URI, "--mode", mode,
             "--weight", "0.5", "--port", "{port}", "--log", str(ws.path("bench", f"predictions-{mode}.jsonl"))],
            "/health",
            "/predict",
            record,
        )  # fmt: skip
    rows = []
    for name, (command, health, path, body) in servers.items():
        with processes.start(
            command, name=f"bench-{name.split(',')[0].split()[0]}", health_path=health, timeout=120
        ) as server:
            timings = sequential(server.url + path, body, args.requests, args.warmup)
            throughput = concurrent(server.url + path, body, args.requests, args.clients)
        rows.append(
            (
                name,
                statistics.median(timings),
                percentile(timings, 0.99),
                len(timings) / (sum(timings) / 1000),
                throughput,
            )
        )
    cpu = os.cpu_count()
    print(
        f"\nmodel {MODEL_NAME} version {champion.version}, {args.requests} single-row requests per server "
        f"after {args.warmup} warm-up; Python {platform.python_version()}, {platform.system()} {platform.machine()}, "
        f"{cpu} CPUs\n"
    )
    print(f"| server | p50 ms | p99 ms | req/s, 1 client | req/s, {args.clients} clients |")
    print("|---|---:|---:|---:|---:|")
    for name, p50, p99, rps, rps_n in rows:
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {rps:.0f} | {rps_n:.0f} |")
    Path(ws.path("bench", "latest.txt")).write_text(repr(rows) + "\n")


if __name__ == "__main__":
    main()
