"""Alerting plumbing: metrics for Prometheus, the rules, the Alertmanager config, and a webhook receiver (notebook 07).

The monitoring job (in the notebook) computes drift and error for each week and hands them to :func:`write_metrics`,
which renders them in the Prometheus text format into a file, atomically. Three processes then do the rest:

- the **exporter** (``python -m mlops_helpers.alerting exporter --file F --port P``) serves that file at ``/metrics``,
  as node_exporter's textfile collector does;
- **Prometheus** scrapes it and evaluates :data:`RULES` (written by :func:`rules_yaml`);
- **Alertmanager** routes firing alerts to the **receiver** (``python -m mlops_helpers.alerting receiver --out F
  --port P``), a local stand-in for Slack that appends each notification to a JSON Lines file and, when
  ``SLACK_WEBHOOK_URL`` is set, forwards a one-line summary to that real Slack webhook.

When the Prometheus binaries are not installed, :func:`evaluate_rules` applies the same rules in Python.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mlops_helpers.jsonl import AppendOnlyFile, read_jsonl
from mlops_helpers.names import MODEL_NAME

PREFIX = "citybikes"
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


# ------------------------------------------------------------------------------------------------------- metrics
def render_metrics(
    values: Mapping[str, float], per_feature: Mapping[str, Mapping[str, float]] | None = None, help_texts=None
) -> bytes:
    """Prometheus text exposition of gauges ``<PREFIX>_<name>`` and per-feature gauges labelled ``feature``."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    help_texts = help_texts or {}
    for name, value in sorted(values.items()):
        Gauge(f"{PREFIX}_{name}", help_texts.get(name, name.replace("_", " ")), registry=registry).set(value)
    for name, by_feature in sorted((per_feature or {}).items()):
        gauge = Gauge(f"{PREFIX}_{name}", help_texts.get(name, name.replace("_", " ")), ["feature"], registry=registry)
        for feature, value in sorted(by_feature.items()):
            gauge.labels(feature=feature).set(value)
    return generate_latest(registry)


def write_metrics(path: str | Path, values: Mapping[str, float], per_feature=None, help_texts=None) -> Path:
    """Write the exposition to ``path`` atomically (a scrape never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(render_metrics(values, per_feature, help_texts))
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class AlertRule:
    """An alert rule: ``<PREFIX>_<metric> <op> <threshold>``, written for Prometheus and evaluable in Python."""

    alert: str
    metric: str
    op: str
    threshold: float
    summary: str
    severity: str = "warning"

    @property
    def expr(self) -> str:
        return f"{PREFIX}_{self.metric} {self.op} {self.threshold:g}"

    def fires(self, values: Mapping[str, float]) -> bool:
        value = values.get(self.metric)
        if value is None:
            return False
        return {">": value > self.threshold, ">=": value >= self.threshold, "<": value < self.threshold}[self.op]


def default_rules(rmse_threshold: float, drift_share: float = 0.5) -> tuple[AlertRule, ...]:
    """The course's two alerts: most features drifted, and the error once labels arrive is too high."""
    return (
        AlertRule("CityBikesDataDrift", "drift_share", ">=", drift_share,
             "{{ $value | humanizePercentage }} of the model's features drifted from the training data"),
        AlertRule("CityBikesErrorHigh", "rmse", ">", rmse_threshold,
             "RMSE {{ $value | printf \"%.1f\" }} on the latest labelled week is above the threshold", "critical"),
    )  # fmt: skip


def rules_yaml(rules: Sequence[AlertRule]) -> str:
    """The Prometheus rule file for ``rules`` (``promtool check rules`` accepts it)."""
    import yaml

    group = {
        "name": "citybikes-model",
        "rules": [
            {
                "alert": r.alert,
                "expr": r.expr,
                "labels": {"severity": r.severity, "model": MODEL_NAME},
                "annotations": {"summary": r.summary},
            }
            for r in rules
        ],
    }
    return yaml.safe_dump({"groups": [group]}, sort_keys=False)


def evaluate_rules(rules: Sequence[AlertRule], values: Mapping[str, float]) -> list[str]:
    """The fallback when Prometheus is not installed: the names of the rules that fire on ``values``."""
    return [r.alert for r in rules if r.fires(values)]


def prometheus_yaml(exporter: str, alertmanager: str, rules_file: str | Path, interval: str = "1s") -> str:
    """A Prometheus config that scrapes the exporter and sends alerts to Alertmanager (``host:port`` each)."""
    import yaml

    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [str(rules_file)],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": "citybikes-monitoring", "static_configs": [{"targets": [exporter]}]}],
    }
    return yaml.safe_dump(config, sort_keys=False)


def alertmanager_yaml(webhook_url: str, group_wait: str = "1s") -> str:
    """An Alertmanager config routing every alert to ``webhook_url`` at once, and repeating rarely."""
    import yaml

    config = {
        "route": {
            "receiver": "course-webhook",
            "group_by": ["alertname"],
            "group_wait": group_wait,
            "group_interval": "5s",
            "repeat_interval": "1h",
        },
        "receivers": [{"name": "course-webhook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}],
    }
    return yaml.safe_dump(config, sort_keys=False)


def binaries_installed() -> bool:
    """True when Debian's ``prometheus`` and ``prometheus-alertmanager`` are installed (``.ci/run`` installs them)."""
    return Path(PROMETHEUS).exists() and Path(ALERTMANAGER).exists()


# ------------------------------------------------------------------------------------------------------ receiver
def slack_text(notification: Mapping) -> str:
    """One line per alert, as it would appear in a Slack channel."""
    lines = []
    for alert in notification.get("alerts", []):
        name = alert.get("labels", {}).get("alertname", "alert")
        summary = alert.get("annotations", {}).get("summary", "")
        lines.append(f"[{alert.get('status', notification.get('status', '?')).upper()}] {name}: {summary}")
    return "\n".join(lines)


def parse_notification(body: bytes) -> dict:
    """An Alertmanager webhook body as a dict; ``ValueError`` says what is wrong with it."""
    notification = json.loads(body or b"null")
    if not isinstance(notification, dict) or not isinstance(notification.get("alerts"), list):
        raise ValueError("expected an Alertmanager notification: a JSON object with an 'alerts' list")
    return notification


def forward_to_slack(notification: Mapping, slack_url: str) -> None:
    """Post the notification's one-line summary to a Slack incoming webhook; a failure is printed, not raised."""
    body = json.dumps({"text": slack_text(notification)}).encode()
    request = urllib.request.Request(slack_url, body, {"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(request, timeout=5).close()
    except OSError as exc:  # Slack down must not lose the notification: it is already on disk
        print(f"forwarding to Slack failed: {exc}", file=sys.stderr, flush=True)


def make_receiver(out: Path, slack_url: str | None = None) -> type[BaseHTTPRequestHandler]:
    """An HTTP handler that appends each notification to ``out`` (JSON Lines) and forwards it to Slack if asked."""
    log = AppendOnlyFile(out)

    class Receiver(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            routes = {"/health": lambda: {"ok": True}, "/alerts": lambda: read_jsonl(out)}
            if self.path in routes:
                self._answer(200, routes[self.path]())
            else:
                self._answer(404, {"error": "GET /health or /alerts; POST notifications to /"})

        def do_POST(self) -> None:
            try:
                notification = parse_notification(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            except ValueError as exc:
                self._answer(400, {"error": str(exc)})
                return
            log.append([notification], sort_keys=True)
            if slack_url:
                forward_to_slack(notification, slack_url)
            self._answer(200, {"received": len(notification["alerts"])})

        def _answer(self, status: int, body) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # quiet: the JSON Lines file is the log
            pass

    return Receiver


def make_exporter(metrics_file: Path) -> type[BaseHTTPRequestHandler]:
    class Exporter(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in ("/metrics", "/health", "/"):
                self.send_error(404)
                return
            try:
                body = metrics_file.read_bytes() if self.path == "/metrics" else b"ok\n"
            except FileNotFoundError:
                body = b""  # no week computed yet: an empty, valid exposition
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    return Exporter


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mlops_helpers.alerting", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    exporter = sub.add_parser("exporter", help="serve a metrics file at /metrics")
    exporter.add_argument("--file", required=True, type=Path)
    receiver = sub.add_parser("receiver", help="receive Alertmanager webhooks into a JSON Lines file")
    receiver.add_argument("--out", required=True, type=Path)
    for p in (exporter, receiver):
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    if args.command == "exporter":
        handler = make_exporter(args.file)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        handler = make_receiver(args.out, os.environ.get("SLACK_WEBHOOK_URL") or None)
    server = ThreadingHTTPServer((args.host, args.port), handler)
    print(f"{args.command} on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
