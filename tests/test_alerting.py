"""The alert path: metrics file -> exporter -> Prometheus rules -> Alertmanager -> receiver -> the action it runs."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from mlops_helpers import alerting, processes
from mlops_helpers.jsonl import read_jsonl

RULES = alerting.default_rules()
needs_binaries = pytest.mark.skipif(
    not alerting.binaries_installed() and not os.environ.get("CI"),
    reason="Prometheus/Alertmanager missing: apt-get install prometheus prometheus-alertmanager (CI installs them)",
)
#: A command that records the alert it was started for and the notification file it was given, then sleeps.
RECORDER = "import os, sys, time; open(sys.argv[1], 'a').write(os.environ['ALERT_NAME'] + ' ' + sys.argv[2] + '\\n'); "
RECORDER += "time.sleep(float(sys.argv[3]))"


def _post(url: str, body) -> tuple[int, dict]:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _get(url: str):
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _wait_for(predicate, timeout: float = 30.0, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f} s")


def _note(alertname: str, status: str = "firing", group: str | None = None) -> dict:
    alert = {"status": status, "labels": {"alertname": alertname}}
    return {"status": status, "groupKey": group or f"{{}}:{{alertname={alertname!r}}}", "alerts": [alert]}


def test_rules_render_for_prometheus_and_evaluate_in_python():
    groups = yaml.safe_load(alerting.rules_yaml(RULES))["groups"]
    assert [g["name"] for g in groups] == ["citybikes-model", "prediction-service"]
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    assert rules["CityBikesPredictionDrift"]["expr"] == "last_over_time(citybikes_prediction_psi[1s]) > 0.25"
    assert rules["CityBikesErrorHigh"]["expr"] == (
        "last_over_time(citybikes_rmse[1s]) > last_over_time(citybikes_rmse_threshold[1s])"
    )
    assert rules["CityBikesErrorHigh"]["for"] == "1s" and "for" not in rules["CityBikesPredictionDrift"]
    assert "histogram_quantile(0.99" in rules["PredictionLatencyHigh"]["expr"]
    assert {r["labels"]["severity"] for r in rules.values()} == {"warning", "critical", "page"}
    gauges = {"prediction_psi": 0.3, "rmse": 80.0, "rmse_threshold": 72.0}
    assert alerting.evaluate_rules(RULES, gauges) == ["CityBikesPredictionDrift", "CityBikesErrorHigh"]
    assert alerting.evaluate_rules(RULES, {**gauges, "prediction_psi": 0.25, "rmse": 72.0}) == []
    assert alerting.evaluate_rules(RULES, {"rmse": 80.0}) == []  # no threshold gauge: no alert, as in PromQL


def test_a_check_refuses_an_unknown_operator():
    with pytest.raises(ValueError, match="op must be"):
        alerting.Check("rmse", "=>", 1.0)


def test_metrics_render_in_the_text_format(tmp_path):
    path = alerting.write_metrics(tmp_path / "m.prom", {"rmse": 42.5, "week": 27}, {"feature_psi": {"temp": 5.1}})
    text = path.read_text()
    assert "citybikes_rmse 42.5" in text and 'citybikes_feature_psi{feature="temp"} 5.1' in text
    assert f"# HELP citybikes_rmse {alerting.METRICS['rmse']}" in text
    assert "# TYPE citybikes_week gauge" in text and not (tmp_path / "m.prom.tmp").exists()


def test_the_fallback_notification_reads_like_alertmanagers():
    note = alerting.notification(RULES, ["CityBikesErrorHigh"], {"rmse": 78.65, "rmse_threshold": 72.3}, "retrain")
    assert note["receiver"] == "retrain" and note["groupLabels"] == {"alertname": "CityBikesErrorHigh"}
    assert (
        alerting.slack_text(note)
        == "[FIRING] CityBikesErrorHigh: RMSE 78.7 on the latest labelled week is above the threshold"
    )
    with pytest.raises(ValueError, match="one group"):
        alerting.notification(RULES, ["CityBikesErrorHigh", "CityBikesPredictionDrift"], {}, "x")


def test_configs_route_the_error_alert_to_the_retraining_webhook():
    config = yaml.safe_load(alerting.alertmanager_yaml("http://127.0.0.1:9"))
    assert config["route"]["routes"] == [{"matchers": ['alertname="CityBikesErrorHigh"'], "receiver": "retrain"}]
    assert {r["name"]: r["webhook_configs"][0]["url"] for r in config["receivers"]} == {
        "team-chat": "http://127.0.0.1:9/chat",
        "retrain": "http://127.0.0.1:9/retrain",
    }
    prometheus = yaml.safe_load(alerting.prometheus_yaml("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"))
    assert [job["static_configs"][0]["targets"] for job in prometheus["scrape_configs"]] == [
        ["127.0.0.1:1"],
        ["127.0.0.1:2"],
    ]


@needs_binaries
def test_promtool_and_amtool_accept_the_configs_and_the_rules_behave(tmp_path):
    (tmp_path / "rules.yml").write_text(alerting.rules_yaml(RULES))
    (tmp_path / "prometheus.yml").write_text(alerting.prometheus_yaml("127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3"))
    (tmp_path / "alertmanager.yml").write_text(alerting.alertmanager_yaml("http://127.0.0.1:9"))
    summary = "RMSE 80.0 on the latest labelled week is above the threshold"
    tests = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "200ms",
        "tests": [{
            "interval": "200ms",
            "input_series": [{"series": "citybikes_rmse", "values": "50 80 80 stale 80 80 80 50"},
                             {"series": "citybikes_rmse_threshold", "values": "72x7"}],
            "alert_rule_test": [
                {"eval_time": "400ms", "alertname": "CityBikesErrorHigh", "exp_alerts": []},  # pending
                {"eval_time": "1200ms", "alertname": "CityBikesErrorHigh",  # across a failed scrape
                 "exp_alerts": [{"exp_labels": {"severity": "critical"}, "exp_annotations": {"summary": summary}}]},
                {"eval_time": "1400ms", "alertname": "CityBikesErrorHigh", "exp_alerts": []},
            ],
        }],
    }  # fmt: skip
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(tests))
    for command in (
        [alerting.PROMTOOL, "check", "config", "prometheus.yml"],
        [alerting.PROMTOOL, "test", "rules", "tests.yml"],
        [alerting.AMTOOL, "check-config", "alertmanager.yml"],
    ):
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    metrics = alerting.render_metrics({"rmse": 1.0}, {"feature_psi": {"temp": 0.2}})
    subprocess.run([alerting.PROMTOOL, "check", "metrics"], input=metrics, check=True, capture_output=True)


def test_actions_run_once_per_firing_group_never_on_resolve_never_twice_at_once(tmp_path):
    out = tmp_path / "started.txt"
    actions = alerting.Actions({"X": [sys.executable, "-c", RECORDER, str(out), "{notification}", "1"]}, tmp_path)
    started = actions.handle(_note("X", group="g1"))
    assert [r["event"] for r in started] == ["started"]
    assert actions.handle(_note("X", group="g1"))[0]["reason"] == "already acted on this firing group"
    assert "has not finished" in actions.handle(_note("X", group="g2"))[0]["reason"]
    assert actions.handle(_note("Y")) == [] and actions.handle(_note("X", "resolved", group="g1")) == []
    _wait_for(lambda: [r for r in read_jsonl(tmp_path / "actions.jsonl") if r["event"] == "finished"])
    assert [r["event"] for r in actions.handle(_note("X", group="g1"))] == ["started"]  # fired again after resolving
    records = _wait_for(lambda: [r for r in read_jsonl(tmp_path / "actions.jsonl") if r["event"] == "finished"][1:])
    assert records[0]["returncode"] == 0
    log = read_jsonl(tmp_path / "actions.jsonl")
    assert [r["event"] for r in log] == ["started", "skipped", "skipped", "finished", "started", "finished"]
    saved = [r["notification"] for r in log if r["event"] == "started"]
    assert out.read_text().splitlines() == [f"X {path}" for path in saved]  # {notification} was the saved file
    assert json.loads(Path(saved[0]).read_text()) == _note("X", group="g1")
    assert started[0]["argv"][-2] == saved[0]


def test_an_action_can_name_the_notification_by_its_file_name_alone(tmp_path):
    """A reason written to the audit trail names the saved notification without one machine's folders."""
    actions = alerting.Actions({"X": ["true", "--reason", "alert {alertname}: {notification_name}"]}, tmp_path)
    (record,) = actions.handle(_note("X"))
    assert record["argv"][-1] == "alert X: 1-X.json" and Path(record["notification"]).name == "1-X.json"


def test_actions_are_parsed_from_the_command_line_and_a_file(tmp_path):
    assert alerting.parse_on(["A=python -m x --reason 'alert {alertname}'"]) == {
        "A": ["python", "-m", "x", "--reason", "alert {alertname}"]
    }
    for bad in ("A", "=cmd", "A= "):
        with pytest.raises(ValueError, match="ALERTNAME=COMMAND"):
            alerting.parse_on([bad])
    path = tmp_path / "actions.yml"
    path.write_text(yaml.safe_dump({"A": ["echo", "{notification}"], "B": "echo hi there"}))
    assert alerting.load_actions(path) == {"A": ["echo", "{notification}"], "B": ["echo", "hi", "there"]}
    path.write_text("- not a mapping\n")
    with pytest.raises(ValueError, match="mapping"):
        alerting.load_actions(path)


def test_receiver_stores_notifications_runs_actions_and_refuses_garbage(tmp_path, tmp_workspace):
    out, started = tmp_path / "alerts.jsonl", tmp_path / "started.txt"
    # --on with a placeholder of its own: processes.start fills in only {port} and {host}
    on = "X=" + shlex.join([sys.executable, "-c", RECORDER, str(started), "{alertname}", "0"])
    command = [sys.executable, "-m", "mlops_helpers.alerting", "receiver", "--out", str(out), "--port", "{port}",
               "--on", on]  # fmt: skip
    with processes.start(command, name="receiver", health_path="/health") as receiver:
        assert _get(receiver.url + "/health") == {"ok": True, "actions": ["X"]}
        notification = _note("X")
        assert _post(receiver.url + "/retrain", notification) == (200, {"received": 1, "actions": ["started"]})
        assert _post(receiver.url + "/", [1, 2])[0] == 400
        assert _post(receiver.url + "/", {"no": "alerts"})[0] == 400
        assert _get(receiver.url + "/alerts") == [notification]
        finished = _wait_for(lambda: [r for r in _get(receiver.url + "/actions") if r["event"] == "finished"])
    assert finished[0]["returncode"] == 0 and started.read_text() == "X X\n"  # {alertname} expanded
    out.write_text(out.read_text() + '{"torn')  # a crash mid-write: the reader skips the torn line
    assert read_jsonl(out) == [notification]
    assert alerting.slack_text(notification) == "[FIRING] X: "


@needs_binaries
def test_an_alert_starts_the_action_once_and_resolves(tmp_path, tmp_workspace):
    metrics, out, started = tmp_path / "metrics.prom", tmp_path / "alerts.jsonl", tmp_path / "started.txt"
    healthy = {"week": 0, "prediction_psi": 0.1, "rmse": 30.0, "rmse_threshold": 60.0}
    alerting.write_metrics(metrics, healthy)
    (tmp_path / "rules.yml").write_text(alerting.rules_yaml(RULES))
    actions = {"CityBikesErrorHigh": [sys.executable, "-c", RECORDER, str(started), "{notification}", "0"]}
    (tmp_path / "actions.yml").write_text(yaml.safe_dump(actions))
    py = [sys.executable, "-m", "mlops_helpers.alerting"]
    with (
        processes.start([*py, "exporter", "--file", str(metrics), "--port", "{port}"], name="exporter") as exporter,
        processes.start([*py, "receiver", "--out", str(out), "--actions", str(tmp_path / "actions.yml"),
                         "--port", "{port}"], name="receiver", health_path="/health") as receiver,
    ):  # fmt: skip
        (tmp_path / "alertmanager.yml").write_text(alerting.alertmanager_yaml(receiver.url))
        alertmanager = processes.start(
            [alerting.ALERTMANAGER, "--config.file=alertmanager.yml", "--web.listen-address=127.0.0.1:{port}",
             "--cluster.listen-address=", "--storage.path=am"],
            name="alertmanager", health_path="/-/ready", cwd=tmp_path,
        )  # fmt: skip
        with alertmanager:
            address = exporter.url.removeprefix("http://")
            config = alerting.prometheus_yaml(address, address, alertmanager.url.removeprefix("http://"))
            (tmp_path / "prometheus.yml").write_text(config)
            prometheus = processes.start(
                [alerting.PROMETHEUS, "--config.file=prometheus.yml", "--web.listen-address=127.0.0.1:{port}",
                 "--storage.tsdb.path=tsdb", "--rules.alert.resend-delay=2s"],
                name="prometheus", health_path="/-/ready", cwd=tmp_path,
            )  # fmt: skip
            with prometheus:
                query = f"{prometheus.url}/api/v1/query?query=citybikes_week"
                _wait_for(lambda: _get(query)["data"]["result"])  # scraped (target discovery takes ~5 s)
                alerting.write_metrics(metrics, {**healthy, "week": 1, "rmse": 80.0})
                _wait_for(lambda: [r for r in _get(receiver.url + "/actions") if r["event"] == "finished"], 60)
                alerting.write_metrics(metrics, {**healthy, "week": 2})
                resolved = _wait_for(lambda: [n for n in read_jsonl(out) if n["status"] == "resolved"], 60)
    assert resolved[0]["receiver"] == "retrain"
    assert [r["event"] for r in read_jsonl(tmp_path / "actions" / "actions.jsonl")] == ["started", "finished"]
    assert len(started.read_text().splitlines()) == 1
    firing = [n for n in read_jsonl(out) if n["receiver"] == "retrain" and n["status"] == "firing"]
    assert len(firing) == 1 and firing[0]["alerts"][0]["labels"]["alertname"] == "CityBikesErrorHigh"
