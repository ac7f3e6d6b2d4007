"""Alerting: the monitoring job's metrics, the alert rules, Prometheus' and Alertmanager's configs, and the webhook
receiver that turns an alert into an action (notebook 07; the receiver's actions also serve notebook 09).

Notebook 07 writes each piece in a cell (the exposition with ``prometheus_client``, the rules, the two configs as YAML)
and checks that it is the same as what this module generates. The moving parts, each a process on loopback:

- the **exporter** (``python -m mlops_helpers.alerting exporter --file F --port P``) serves the monitoring job's
  metrics file (written atomically by :func:`write_metrics`) at ``/metrics``, as node_exporter's textfile collector
  does;
- **Prometheus** scrapes the exporter and the prediction service and evaluates :func:`default_rules`;
- **Alertmanager** groups the firing alerts and routes them (:func:`alertmanager_yaml`) to the **receiver**.

The receiver (``python -m mlops_helpers.alerting receiver --out F --port P [--on ALERTNAME=COMMAND ...]``) is a local
stand-in for Slack and for a CI system's webhook. Every notification Alertmanager posts is appended to ``F`` (JSON
Lines) and, when ``SLACK_WEBHOOK_URL`` is set, forwarded to that Slack webhook as one line per alert. Actions:

- ``--on ALERTNAME=COMMAND`` (repeatable; COMMAND is split like a shell would, with :func:`shlex.split`, but run
  without a shell) or ``--actions FILE`` (YAML: ``ALERTNAME: [argv, ...]``) name a command to run when that alert
  **fires**. A resolved notification never starts anything;
- the command runs once per firing group (Alertmanager's ``groupKey``): repeated notifications of a group that is
  still firing are logged as skipped; after the group resolves, its next firing acts again;
- never two at once for one alert: a firing that arrives while the previous run of that alert's command is still
  running is logged as skipped;
- the notification is saved to ``<actions-dir>/<n>-<ALERTNAME>.json``; ``{notification}``, ``{notification_name}``
  and ``{alertname}`` in the command's arguments are replaced by that path, its file name (for a reason written to the
  audit trail, which should not name one machine's folders) and the alert's name, and the environment gets
  ``ALERT_NOTIFICATION`` and ``ALERT_NAME``. The command's output goes to ``<actions-dir>/<n>-<ALERTNAME>.log``;
- every decision (started with its PID and argv, finished with its exit code, skipped and why) is a line of
  ``<actions-dir>/actions.jsonl``, served at ``GET /actions``. ``<actions-dir>`` defaults to ``actions/`` beside F.

For example, notebook 07 retrains when the error alert fires::

    python -m mlops_helpers.alerting receiver --out alerts.jsonl --port 9095 \\
        --on "CityBikesErrorHigh=python -m mlops_helpers.pipeline run --data delivered.csv --reason 'alert {alertname}'"

and a canary can be rolled back with ``--on "CanaryErrorHigh=python -m mlops_helpers.pipeline rollback"``. Started
through :func:`mlops_helpers.processes.start`, which fills in only ``{port}`` and ``{host}``, the placeholders are
written as they are (``{notification}``, ``{alertname}``); notebook 07 puts its command in an ``--actions`` file.

When the Prometheus binaries are not installed, :func:`evaluate_rules` applies the rules that compare the monitoring
job's gauges in Python, and :func:`notification` builds the body Alertmanager would have posted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from mlops_helpers.jsonl import AppendOnlyFile, read_jsonl

PREFIX = "citybikes"
PROMETHEUS = "/usr/bin/prometheus"
ALERTMANAGER = "/usr/bin/prometheus-alertmanager"
PROMTOOL = "/usr/bin/promtool"
AMTOOL = "/usr/bin/amtool"

#: The monitoring job's gauges (``<PREFIX>_<name>``) and their help texts.
METRICS = {
    "week": "index of the replayed week the other gauges describe",
    "model_version": "registered version of the model that served the week",
    "prediction_psi": "PSI of the week's predictions against the model's predictions on its training window",
    "rmse": "RMSE of the week's logged predictions against the rentals counted",
    "rmse_threshold": "RMSE above which the error alert fires: the model's holdout RMSE times a factor",
    "feature_psi": "PSI of each logged input against the model's training window",
}
#: The prediction drift warning fires above this PSI (the usual mark of a large shift).
PREDICTION_PSI_WARNING = 0.25
#: The service's latency objective: 99 % of ``/predict`` requests answered within this many seconds.
LATENCY_SLO_SECONDS = 0.5


# ------------------------------------------------------------------------------------------------------- metrics
def render_metrics(values: Mapping[str, float], per_feature: Mapping[str, Mapping[str, float]] | None = None) -> bytes:
    """Prometheus text exposition of gauges ``<PREFIX>_<name>`` and per-feature gauges labelled ``feature``.

    Help texts come from :data:`METRICS` (a name it lacks gets its own name, spaced).
    """
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    registry = CollectorRegistry()
    for name, value in sorted(values.items()):
        Gauge(f"{PREFIX}_{name}", METRICS.get(name, name.replace("_", " ")), registry=registry).set(value)
    for name, by_feature in sorted((per_feature or {}).items()):
        gauge = Gauge(f"{PREFIX}_{name}", METRICS.get(name, name.replace("_", " ")), ["feature"], registry=registry)
        for feature, value in sorted(by_feature.items()):
            gauge.labels(feature=feature).set(value)
    return generate_latest(registry)


def write_metrics(path: str | Path, values: Mapping[str, float], per_feature=None) -> Path:
    """Write the exposition to ``path`` atomically (a scrape never sees half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_bytes(render_metrics(values, per_feature))
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------------------- rules
_OPS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__}
#: How far back a rule looks for a gauge's last scraped value (ten scrapes of the replay's clock).
LAST_SCRAPED = "1s"


def _last(gauge: str) -> str:
    return f"last_over_time({PREFIX}_{gauge}[{LAST_SCRAPED}])"


@dataclass(frozen=True)
class Check:
    """A comparison of two of the monitoring job's gauges, or of a gauge with a number: ``metric op bound``."""

    metric: str
    op: str
    bound: float | str  # a number, or the name of another gauge

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"op must be one of {sorted(_OPS)}, not {self.op!r}")

    @property
    def expr(self) -> str:
        """The comparison in PromQL, each gauge read as its last value scraped within :data:`LAST_SCRAPED`.

        A failed scrape makes Prometheus mark the target's series stale at once; an alert on the bare gauge would
        resolve and fire again (and a receiver act again). ``last_over_time`` skips the stale marker.
        """
        bound = _last(self.bound) if isinstance(self.bound, str) else f"{self.bound:g}"
        return f"{_last(self.metric)} {self.op} {bound}"

    def holds(self, values: Mapping[str, float]) -> bool:
        """The comparison on ``values`` (gauge name -> value); False when a gauge is missing, as in PromQL."""
        value = values.get(self.metric)
        bound = values.get(self.bound) if isinstance(self.bound, str) else self.bound
        return value is not None and bound is not None and _OPS[self.op](float(value), float(bound))


@dataclass(frozen=True)
class AlertRule:
    """An alerting rule as Prometheus reads it; ``check`` is the same condition in Python, for the fallback."""

    alert: str
    expr: str
    severity: str
    summary: str
    group: str
    for_: str | None = None
    check: Check | None = None

    @classmethod
    def on_gauges(cls, alert: str, check: Check, severity: str, summary: str, for_: str | None = None) -> AlertRule:
        """A rule of the monitoring job's group whose expression is ``check``'s."""
        return cls(alert, check.expr, severity, summary, f"{PREFIX}-model", for_, check)

    def as_dict(self) -> dict:
        rule = {"alert": self.alert, "expr": self.expr}
        if self.for_:
            rule["for"] = self.for_
        rule["labels"] = {"severity": self.severity}
        rule["annotations"] = {"summary": self.summary}
        return rule


def default_rules() -> tuple[AlertRule, ...]:
    """The course's alerts: prediction drift (a warning), the error (critical: retrains), the latency SLO (a page)."""
    latency = (
        'histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{job="prediction-service", '
        f'path="/predict"}}[5m]))) > {LATENCY_SLO_SECONDS:g}'
    )
    return (
        AlertRule.on_gauges("CityBikesPredictionDrift", Check("prediction_psi", ">", PREDICTION_PSI_WARNING),
                            "warning", "the week's predictions drifted from the training window's "
                            '(PSI {{ $value | printf "%.2f" }})'),
        AlertRule.on_gauges("CityBikesErrorHigh", Check("rmse", ">", "rmse_threshold"), "critical",
                            'RMSE {{ $value | printf "%.1f" }} on the latest labelled week is above the threshold',
                            for_="1s"),
        AlertRule("PredictionLatencyHigh", latency, "page",
                  "p99 latency of /predict is {{ $value | humanizeDuration }} (objective: "
                  f"{LATENCY_SLO_SECONDS * 1000:g} ms)", "prediction-service", for_="5m"),
    )  # fmt: skip


def rules_yaml(rules: Sequence[AlertRule]) -> str:
    """The Prometheus rule file for ``rules``, one group per :attr:`AlertRule.group` (``promtool check rules`` OK)."""
    import yaml

    groups: dict[str, list[dict]] = {}
    for rule in rules:
        groups.setdefault(rule.group, []).append(rule.as_dict())
    return yaml.safe_dump({"groups": [{"name": n, "rules": r} for n, r in groups.items()]}, sort_keys=False, width=120)


def evaluate_rules(rules: Sequence[AlertRule], values: Mapping[str, float]) -> list[str]:
    """The fallback when Prometheus is not installed: the rules with a ``check`` that holds on ``values``.

    ``for:`` is not modelled (each call is one evaluation) and rules without a ``check`` (PromQL over time, such as
    the latency SLO) are not evaluated.
    """
    return [r.alert for r in rules if r.check is not None and r.check.holds(values)]


def render_summary(template: str, value: float) -> str:
    """A summary with its ``{{ $value | printf "%.Nf" }}`` filled in, as Prometheus renders it (fallback only)."""
    return re.sub(r'\{\{\s*\$value\s*\|\s*printf\s*"(%[^"]+)"\s*\}\}', lambda m: m.group(1) % value, template)


def notification(
    rules: Sequence[AlertRule],
    firing: Sequence[str],
    values: Mapping[str, float],
    receiver: str,
    status: str = "firing",
) -> dict:
    """The body Alertmanager would post for the alerts ``firing`` (names of ``rules``), grouped by alert name.

    Used by the fallback without Alertmanager; all the alerts must share one name (one group).
    """
    names = sorted(set(firing))
    if len(names) != 1:
        raise ValueError(f"one group is one alert name (group_by: [alertname]), not {names}")
    rule = next(r for r in rules if r.alert == names[0])
    labels = {"alertname": rule.alert, "severity": rule.severity}
    value = values.get(rule.check.metric, float("nan")) if rule.check else float("nan")
    alert = {"status": status, "labels": labels, "annotations": {"summary": render_summary(rule.summary, value)}}
    return {"version": "4", "status": status, "receiver": receiver, "groupKey": f'{{}}:{{alertname="{rule.alert}"}}',
            "groupLabels": {"alertname": rule.alert}, "commonLabels": labels, "alerts": [alert]}  # fmt: skip


# ------------------------------------------------------------------------------------------------------- configs
def prometheus_yaml(
    exporter: str, service: str, alertmanager: str, rules_file: str = "rules.yml", interval: str = "100ms"
) -> str:
    """Prometheus' config: scrape the exporter and the service, evaluate ``rules_file``, alert to Alertmanager.

    Addresses are ``host:port``; ``rules_file`` is read relative to the config file's folder. The exporter is scraped
    and the rules evaluated every ``interval`` (the replay's clock in notebook 07), the service every second.
    """
    import yaml

    config = {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "rule_files": [rules_file],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {"job_name": f"{PREFIX}-monitoring", "static_configs": [{"targets": [exporter]}]},
            {"job_name": "prediction-service", "scrape_interval": "1s", "static_configs": [{"targets": [service]}]},
        ],
    }
    return yaml.safe_dump(config, sort_keys=False, width=120)


def alertmanager_yaml(receiver_url: str, group_wait: str = "1s", group_interval: str = "2s") -> str:
    """Alertmanager's config: every alert to the team's chat; the error alert to the retraining webhook.

    Alerts are grouped by name; a group still firing is re-notified every 4 hours. Both receivers post to
    ``receiver_url`` (the course's one receiver plays both; the body names the receiver).
    """
    import yaml

    config = {
        "route": {
            "receiver": "team-chat",
            "group_by": ["alertname"],
            "group_wait": group_wait,
            "group_interval": group_interval,
            "repeat_interval": "4h",
            "routes": [{"matchers": ['alertname="CityBikesErrorHigh"'], "receiver": "retrain"}],
        },
        "receivers": [
            {"name": "team-chat", "webhook_configs": [{"url": f"{receiver_url}/chat", "send_resolved": True}]},
            {"name": "retrain", "webhook_configs": [{"url": f"{receiver_url}/retrain", "send_resolved": True}]},
        ],
    }
    return yaml.safe_dump(config, sort_keys=False, width=120)


def binaries_installed() -> bool:
    """True when Debian's ``prometheus`` and ``prometheus-alertmanager`` are installed (``.ci/run`` installs them)."""
    return all(Path(p).exists() for p in (PROMETHEUS, ALERTMANAGER, PROMTOOL, AMTOOL))


# ------------------------------------------------------------------------------------------------------- actions
class Actions:
    """The receiver's actions: a command per alert name, run when that alert fires (see the module docstring)."""

    def __init__(self, commands: Mapping[str, Sequence[str]], directory: str | Path) -> None:
        for name, argv in commands.items():
            if not argv:
                raise ValueError(f"the action for {name} has no command")
        self.commands = {name: list(argv) for name, argv in commands.items()}
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log = AppendOnlyFile(self.directory / "actions.jsonl")
        self._lock = threading.Lock()
        self._acted: set[tuple[str, str]] = set()
        self._running: dict[str, subprocess.Popen] = {}
        self._count = len(read_jsonl(self.log.path))

    def handle(self, notification: Mapping) -> list[dict]:
        """Start, skip or re-arm each configured action this notification concerns; returns what was logged."""
        with self._lock:
            records = []
            for name, argv in self.commands.items():
                alerts = [a for a in notification["alerts"] if a.get("labels", {}).get("alertname") == name]
                if alerts:
                    records += self._decide(name, argv, alerts, notification)
            return records

    def _decide(self, name: str, argv: list[str], alerts: list[dict], notification: Mapping) -> list[dict]:
        key = (name, str(notification.get("groupKey", "")))
        if not any(a.get("status") == "firing" for a in alerts):
            self._acted.discard(key)  # the group resolved: its next firing acts again
            return []
        if key in self._acted:
            return [self._record(name, "skipped", reason="already acted on this firing group")]
        running = self._running.get(name)
        if running is not None and running.poll() is None:
            return [self._record(name, "skipped", reason=f"the previous run (pid {running.pid}) has not finished")]
        self._acted.add(key)
        return [self._start(name, argv, notification)]

    def _start(self, name: str, argv: list[str], notification: Mapping) -> dict:
        self._count += 1
        stem = self.directory / f"{self._count}-{name}"
        saved, output = stem.with_suffix(".json"), stem.with_suffix(".log")
        saved.write_text(json.dumps(notification, indent=1, sort_keys=True))
        fill = {"{notification}": str(saved), "{notification_name}": saved.name, "{alertname}": name}
        command = []
        for part in argv:
            for placeholder, value in fill.items():
                part = part.replace(placeholder, value)
            command.append(part)
        env = {**os.environ, "ALERT_NOTIFICATION": str(saved), "ALERT_NAME": name}
        with open(output, "wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        self._running[name] = process
        threading.Thread(target=self._wait, args=(name, process), daemon=True).start()
        return self._record(name, "started", pid=process.pid, argv=command, notification=str(saved), log=str(output))

    def _wait(self, name: str, process: subprocess.Popen) -> None:
        code = process.wait()
        with self._lock:
            self._record(name, "finished", pid=process.pid, returncode=code)

    def _record(self, alert: str, event: str, **details) -> dict:
        record = {"at": round(time.time(), 3), "alert": alert, "event": event, **details}
        self.log.append([record])
        print(json.dumps(record), flush=True)
        return record


def parse_on(specs: Sequence[str]) -> dict[str, list[str]]:
    """``["ALERTNAME=COMMAND", ...]`` as ``{ALERTNAME: argv}``; the command is split with :func:`shlex.split`."""
    commands = {}
    for spec in specs:
        name, sep, command = spec.partition("=")
        if not sep or not name.strip() or not command.strip():
            raise ValueError(f"--on takes ALERTNAME=COMMAND, not {spec!r}")
        commands[name.strip()] = shlex.split(command)
    return commands


def load_actions(path: str | Path) -> dict[str, list[str]]:
    """An actions file (YAML ``ALERTNAME: [argv, ...]`` or ``ALERTNAME: "command line"``) as ``{ALERTNAME: argv}``."""
    import yaml

    loaded = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping ALERTNAME: [argv, ...]")
    return {str(k): shlex.split(v) if isinstance(v, str) else [str(a) for a in v] for k, v in loaded.items()}


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


def make_receiver(
    out: Path, slack_url: str | None = None, actions: Actions | None = None
) -> type[BaseHTTPRequestHandler]:
    """An HTTP handler that appends each notification to ``out`` (JSON Lines), forwards it to Slack if asked, and
    hands it to ``actions``."""
    log = AppendOnlyFile(out)
    reads = {
        "/health": lambda: {"ok": True, "actions": sorted(actions.commands) if actions else []},
        "/alerts": lambda: read_jsonl(out),
        "/actions": lambda: read_jsonl(actions.log.path) if actions else [],
    }

    class Receiver(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path in reads:
                self._answer(200, reads[self.path]())
            else:
                self._answer(404, {"error": "GET /health, /alerts or /actions; POST notifications to any other path"})

        def do_POST(self) -> None:
            try:
                notification = parse_notification(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
            except ValueError as exc:
                self._answer(400, {"error": str(exc)})
                return
            log.append([notification], sort_keys=True)
            if slack_url:
                forward_to_slack(notification, slack_url)
            started = actions.handle(notification) if actions else []
            self._answer(200, {"received": len(notification["alerts"]), "actions": [r["event"] for r in started]})

        def _answer(self, status: int, body) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # quiet: the JSON Lines files are the log
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mlops_helpers.alerting", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    exporter = sub.add_parser("exporter", help="serve a metrics file at /metrics")
    exporter.add_argument("--file", required=True, type=Path)
    receiver = sub.add_parser("receiver", help="receive Alertmanager webhooks; run a command when an alert fires")
    receiver.add_argument("--out", required=True, type=Path, help="JSON Lines file of the notifications")
    on_help = "run COMMAND (no shell) when ALERTNAME fires ({notification}, {alertname} expand)"
    receiver.add_argument("--on", action="append", default=[], metavar="ALERTNAME=COMMAND", help=on_help)
    receiver.add_argument("--actions", type=Path, help="YAML file ALERTNAME: [argv, ...] (as --on)")
    receiver.add_argument("--actions-dir", type=Path, help="saved notifications, outputs, actions.jsonl")
    for p in (exporter, receiver):
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, required=True)
    return parser


def _receiver_handler(args: argparse.Namespace) -> type[BaseHTTPRequestHandler]:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    commands = {**(load_actions(args.actions) if args.actions else {}), **parse_on(args.on)}
    actions = Actions(commands, args.actions_dir or args.out.parent / "actions") if commands else None
    return make_receiver(args.out, os.environ.get("SLACK_WEBHOOK_URL") or None, actions)


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        handler = make_exporter(args.file) if args.command == "exporter" else _receiver_handler(args)
    except ValueError as exc:
        parser.error(str(exc))
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
