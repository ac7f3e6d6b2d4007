"""The alert path: metrics file -> exporter -> Prometheus rules -> Alertmanager -> webhook receiver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest
import yaml

from mlops_helpers import alerting, processes
from mlops_helpers.jsonl import read_jsonl

RULES = alerting.default_rules(rmse_threshold=60.0)
needs_binaries = pytest.mark.skipif(
    not alerting.binaries_installed() and not os.environ.get("CI"),
    reason="Prometheus/Alertmanager missing: apt-get install prometheus prometheus-alertmanager (CI installs them)",
)


def _post(url: str, body) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_rules_render_for_prometheus_and_evaluate_in_python():
    groups = yaml.safe_load(alerting.rules_yaml(RULES))["groups"]
    exprs = {r["alert"]: r["expr"] for r in groups[0]["rules"]}
    assert exprs == {"CityBikesDataDrift": "citybikes_drift_share >= 0.5", "CityBikesErrorHigh": "citybikes_rmse > 60"}
    assert alerting.evaluate_rules(RULES, {"drift_share": 0.8, "rmse": 40}) == ["CityBikesDataDrift"]
    assert alerting.evaluate_rules(RULES, {"drift_share": 0.5, "rmse": 61}) == [
        "CityBikesDataDrift",
        "CityBikesErrorHigh",
    ]
    assert alerting.evaluate_rules(RULES, {"drift_share": 0.1}) == []


def test_metrics_render_in_the_text_format(tmp_path):
    path = alerting.write_metrics(tmp_path / "m.prom", {"rmse": 42.5, "week": 27}, {"psi": {"temp": 5.1, "hr": 0.01}})
    text = path.read_text()
    assert "citybikes_rmse 42.5" in text and 'citybikes_psi{feature="temp"} 5.1' in text
    assert "# TYPE citybikes_week gauge" in text and not (tmp_path / "m.prom.tmp").exists()


@needs_binaries
def test_promtool_accepts_rules_and_metrics(tmp_path):
    rules = tmp_path / "rules.yml"
    rules.write_text(alerting.rules_yaml(RULES))
    subprocess.run(["promtool", "check", "rules", str(rules)], check=True, capture_output=True)
    metrics = alerting.render_metrics({"rmse": 1.0}, {"psi": {"temp": 0.2}})
    subprocess.run(["promtool", "check", "metrics"], input=metrics, check=True, capture_output=True)


def test_receiver_stores_notifications_and_refuses_garbage(tmp_path, tmp_workspace):
    out = tmp_path / "alerts.jsonl"
    command = [sys.executable, "-m", "mlops_helpers.alerting", "receiver", "--out", str(out), "--port", "{port}"]
    with processes.start(command, name="receiver", health_path="/health") as receiver:
        notification = {"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "X"}}]}
        assert _post(receiver.url + "/", notification) == (200, {"received": 1})
        assert _post(receiver.url + "/", [1, 2])[0] == 400
        assert _post(receiver.url + "/", {"no": "alerts"})[0] == 400
        with urllib.request.urlopen(receiver.url + "/alerts", timeout=5) as response:
            assert json.loads(response.read()) == [notification]
    out.write_text(out.read_text() + '{"torn')  # a crash mid-write: the reader skips the torn line
    assert read_jsonl(out) == [notification]
    assert alerting.slack_text(notification) == "[FIRING] X: "


@needs_binaries
def test_an_alert_travels_from_metrics_to_the_webhook(tmp_path, tmp_workspace):
    metrics, out = tmp_path / "metrics.prom", tmp_path / "alerts.jsonl"
    alerting.write_metrics(metrics, {"drift_share": 0.1, "rmse": 30.0})
    py = [sys.executable, "-m", "mlops_helpers.alerting"]
    with (
        processes.start([*py, "exporter", "--file", str(metrics), "--port", "{port}"], name="exporter") as exporter,
        processes.start([*py, "receiver", "--out", str(out), "--port", "{port}"], name="receiver") as receiver,
    ):
        am_config = tmp_path / "alertmanager.yml"
        am_config.write_text(alerting.alertmanager_yaml(receiver.url + "/"))
        alertmanager = processes.start(
            [alerting.ALERTMANAGER, f"--config.file={am_config}", "--web.listen-address=127.0.0.1:{port}",
             "--cluster.listen-address=", f"--storage.path={tmp_path / 'am'}"],
            name="alertmanager", health_path="/-/ready",
        )  # fmt: skip
        with alertmanager:
            rules = tmp_path / "rules.yml"
            rules.write_text(alerting.rules_yaml(RULES))
            prom_config = tmp_path / "prometheus.yml"
            prom_config.write_text(alerting.prometheus_yaml(f"127.0.0.1:{exporter.port}",
                                                            f"127.0.0.1:{alertmanager.port}", rules))  # fmt: skip
            prometheus = processes.start(
                [alerting.PROMETHEUS, f"--config.file={prom_config}", "--web.listen-address=127.0.0.1:{port}",
                 f"--storage.tsdb.path={tmp_path / 'tsdb'}", "--rules.alert.resend-delay=2s"],
                name="prometheus", health_path="/-/ready",
            )  # fmt: skip
            with prometheus:
                time.sleep(3)
                assert read_jsonl(out) == []  # healthy metrics: no alert
                alerting.write_metrics(metrics, {"drift_share": 0.8, "rmse": 30.0})
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not read_jsonl(out):
                    time.sleep(0.5)
    notifications = read_jsonl(out)
    assert notifications, "no alert reached the webhook within 60 s"
    names = {a["labels"]["alertname"] for n in notifications for a in n["alerts"]}
    assert names == {"CityBikesDataDrift"}
