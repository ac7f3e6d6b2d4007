"""The prediction service: validation against the signature, the log, the metrics, and the real service on loopback.

A champion is registered once for the module in a temporary workspace (about 10 s). The unit tests use FastAPI's
TestClient; the live tests start `python -m mlops_helpers.serving` through `processes.start`, fuzz its OpenAPI with
schemathesis and load it from 8 concurrent clients. No test asserts a time: speed is in `make bench`.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import numpy as np
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from mlops_helpers import catchup, data, processes, workspace
from mlops_helpers.jsonl import read_jsonl
from mlops_helpers.names import MODEL_NAME
from mlops_helpers.serving.app import create_app
from mlops_helpers.serving.contract import MAX_BATCH, SLICE, Column, request_models
from mlops_helpers.serving.limits import MAX_BODY_BYTES
from mlops_helpers.serving.predlog import PredictionLog, log_frame
from mlops_helpers.serving.service import PredictionService, Refusal

URI = f"models:/{MODEL_NAME}@champion"
# Starlette's TestClient warns about its own transport; nothing the course can act on.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture(scope="module")
def champion(tmp_path_factory, module_tracking_env):
    """A workspace with a registered champion; the environment is restored afterwards."""
    root = tmp_path_factory.mktemp("serving") / "workspace"
    ws = workspace.setup(root)
    version = catchup.ensure_champion(ws)
    yield ws, version


@pytest.fixture(scope="module")
def frame():
    X, _ = data.xy(data.window(data.load_bikes(), data.VALIDATION_START, data.TRAIN_WINDOW.end))
    return X.head(20)


@pytest.fixture(scope="module")
def record(frame):
    return frame.iloc[0].to_dict()


@pytest.fixture(scope="module")
def loaded(champion):
    import mlflow

    return mlflow.pyfunc.load_model(URI)


@pytest.fixture(scope="module")
def app(champion, loaded):
    ws, _ = champion
    return create_app(PredictionService(URI, log_path=ws.path("test-service", "predictions.jsonl"), model=loaded))


@pytest.fixture(scope="module")
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as test_client:
        yield test_client


def _metric(text: str, name: str, **labels: str) -> float:
    """The value of sample ``name`` with ``labels`` in a Prometheus exposition (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


# -- validation, with TestClient --------------------------------------------------------------------------------------


def test_health_names_the_resolved_version(client, champion):
    _, version = champion
    assert client.get("/health").json() == {
        "status": "ok",
        "model": MODEL_NAME,
        "version": str(version.version),
        "alias": "champion",
        "uri": URI,
        "mode": "single",
    }


def test_record_and_batch_predict_what_the_model_predicts(client, frame, record, loaded):
    expected = loaded.predict(frame)
    one = client.post("/predict", json=record)
    assert one.status_code == 200
    assert one.headers["X-Request-ID"] == one.json()["request_id"]
    assert np.isclose(one.json()["predictions"][0], expected[0])
    batch = client.post("/predict", json={"records": frame.to_dict(orient="records")})
    assert batch.status_code == 200
    assert np.allclose(batch.json()["predictions"], expected)


def test_the_service_decides_without_http(champion, loaded, record, tmp_path):
    """Predict, refuse, route and reload are plain method calls: the app only wires routes to them."""
    service = PredictionService(URI, log_path=tmp_path / "direct.jsonl", model=loaded)
    answer = service.predict([record], key="station-7")
    assert (answer.variant, answer.version) == ("champion", str(champion[1].version))
    logged = read_jsonl(tmp_path / "direct.jsonl")
    assert [(r["request_id"], r["key"], r["served"]) for r in logged] == [(answer.request_id, "station-7", True)]
    with pytest.raises(Refusal, match="cannot predict") as refused:
        service.predict([{**record, "temp": 1e300}])
    assert refused.value.status == 422 and len(read_jsonl(tmp_path / "direct.jsonl")) == 1  # nothing logged
    with pytest.raises(Refusal, match="needs a challenger") as conflict:
        service.set_routing({"mode": "canary"})
    assert conflict.value.status == 409 and service.routing.mode == "single"
    assert service.reload()["changed"] is False


def test_integers_are_accepted_for_float_columns(client, record):
    assert client.post("/predict", json={**record, "hr": 8}).status_code == 200


BAD_BODIES = {
    "missing column": (lambda r: {k: v for k, v in r.items() if k != "temp"}, ["body", "record", "temp"], "required"),
    "wrong type": (lambda r: {**r, "hr": "eight"}, ["body", "record", "hr"], "valid number"),
    "number as a string": (lambda r: {**r, "hr": "8"}, ["body", "record", "hr"], "valid number"),
    "boolean for a number": (lambda r: {**r, "hr": True}, ["body", "record", "hr"], "valid number"),
    "null": (lambda r: {**r, "hum": None}, ["body", "record", "hum"], "valid number"),
    "extra field": (lambda r: {**r, "temperature": 20}, ["body", "record", "temperature"], "not permitted"),
    "bare list": (lambda r: [r], ["body", "record"], "valid dictionary"),
    "empty batch": (lambda r: {"records": []}, ["body", "batch", "records"], "at least 1"),
    "bad row in a batch": (lambda r: {"records": [r, {**r, "temp": "hot"}]}, ["body", "batch", "records", 1], "number"),
    "too many rows": (lambda r: {"records": [r] * (MAX_BATCH + 1)}, ["body", "batch", "records"], "at most"),
    "huge integer": (lambda r: {**r, "temp": 10**400}, ["body", "record", "temp"], "number"),
    "out of float32 range": (lambda r: {**r, "temp": 1e300}, ["body"], "cannot predict"),
    "a string body": (lambda r: "hello", ["body", "record"], "valid dictionary"),
}


@pytest.mark.parametrize("case", BAD_BODIES, ids=list(BAD_BODIES))
def test_bad_requests_get_422_naming_field_and_problem(client, record, case):
    make, loc, message = BAD_BODIES[case]
    response = client.post("/predict", json=make(record))
    assert response.status_code == 422, response.text
    first = response.json()["detail"][0]
    assert first["loc"][: len(loc)] == loc
    assert message in first["msg"]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_are_refused_not_echoed(client, record, token):
    body = json.dumps({**record, "temp": 0.5}).replace("0.5", token, 1)
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0] == {
        "loc": ["body", "record", "temp"],
        "msg": "Input should be a finite number",
        "type": "finite_number",
    }


@pytest.mark.parametrize("body", ["{not json", "", "[1, 2", "null"])
def test_malformed_json_is_a_422(client, body):
    response = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.json()["detail"]


def test_it_keeps_serving_after_bad_requests(client, record):
    for body in ({"records": []}, [record], {**record, "hr": "x"}):
        client.post("/predict", json=body)
    assert client.post("/predict", json=record).status_code == 200


def test_generated_models_follow_each_mlflow_type():
    columns = [
        Column("n", "long"),
        Column("ok", "boolean"),
        Column("city", "string"),
        Column("x", "double", required=False),
    ]
    Record, Batch, _ = request_models(columns)
    assert Record.model_validate({"n": 3, "ok": True, "city": "DC"}).x is None
    for bad in ({"n": 2**63, "ok": True, "city": "DC"}, {"n": 1.5, "ok": True, "city": "DC"}, {"n": 1, "ok": 1}):
        with pytest.raises(ValueError):
            Record.model_validate(bad)
    assert Batch.model_validate({"records": [{"n": 1, "ok": False, "city": ""}]}).records[0].n == 1


def test_metrics_count_requests_by_status_and_carry_the_version(client, record, champion):
    _, version = champion
    before = client.get("/metrics").text
    client.post("/predict", json=record)
    client.post("/predict", json={"records": [record, record]})
    client.post("/predict", json={**record, "hr": "x"})
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain; version=")
    after = response.text

    def grew(name: str, **labels: str) -> float:
        return _metric(after, name, **labels) - _metric(before, name, **labels)

    assert grew("http_requests_total", path="/predict", status="200") == 2
    assert grew("http_requests_total", path="/predict", status="422") == 1
    assert grew("predicted_rows_total", version=str(version.version)) == 3
    assert _metric(after, "prediction_value_count", version=str(version.version)) >= 3
    assert _metric(after, "http_request_duration_seconds_count", path="/predict") >= 3
    assert _metric(after, "model_info", version=str(version.version), alias="champion") == 1


def test_openapi_is_valid_and_the_docs_need_no_network(client):
    from schemathesis.specs.openapi.definitions import OPENAPI_31_VALIDATOR

    spec = client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert not list(OPENAPI_31_VALIDATOR.iter_errors(spec))
    assert {"/health", "/predict"} <= set(spec["paths"])
    # every body is documented: /predict's answer and refusal, and each protocol's request and answers
    predict = spec["paths"]["/predict"]["post"]["responses"]
    assert predict["200"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Predicted"}
    assert predict["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Refused"}
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            if method == "post" and path != "/reload":
                assert operation["requestBody"]["content"], (method, path)
            for status, response in operation["responses"].items():
                schemas = [c.get("schema") for c in response.get("content", {}).values()]
                assert schemas and all(schemas), (method, path, status)
    invocations = spec["paths"]["/invocations"]["post"]
    assert set(invocations["requestBody"]["content"]) == {
        "application/json",
        "text/csv",
        "application/vnd.apache.parquet",
    }
    page = client.get("/docs")
    assert page.status_code == 200 and "openapi.json" in page.text
    assert "http://" not in page.text and "https://" not in page.text and "cdn" not in page.text.lower()


# -- the prediction log -----------------------------------------------------------------------------------------------


def test_the_log_has_one_line_per_predicted_row(app, client, frame):
    log_path = app.state.service.log.path
    before = len(read_jsonl(log_path))
    response = client.post("/predict", json={"records": frame.head(5).to_dict(orient="records")})
    rows = read_jsonl(log_path)[before:]
    assert len(rows) == 5
    assert {r["request_id"] for r in rows} == {response.json()["request_id"]}
    assert [r["row"] for r in rows] == [0, 1, 2, 3, 4]
    assert [r["prediction"] for r in rows] == response.json()["predictions"]
    assert rows[0]["features"] == frame.iloc[0].to_dict()
    assert rows[0]["model"] == MODEL_NAME and rows[0]["time"].endswith("+00:00")
    table = log_frame(log_path)
    assert {"request_id", "time", "version", "prediction", "hr", "temp"} <= set(table.columns)


def test_a_torn_last_line_is_skipped_and_the_next_writer_starts_clean(tmp_path):
    path = tmp_path / "log.jsonl"
    log = PredictionLog(path)
    log.append([{"request_id": "a", "prediction": 1.0}, {"request_id": "b", "prediction": 2.0}])
    log.close()
    text = path.read_text()
    path.write_text(text[:-7])  # a writer killed in the middle of the second line
    assert [r["request_id"] for r in read_jsonl(path)] == ["a"]
    log = PredictionLog(path)
    log.append([{"request_id": "c", "prediction": 3.0}])
    log.close()
    assert [r["request_id"] for r in read_jsonl(path)] == ["a", "c"]
    assert read_jsonl(tmp_path / "missing.jsonl") == []


# -- the real service on loopback -------------------------------------------------------------------------------------


def _serve(ws, name: str, log_name: str) -> processes.Server:
    command = [sys.executable, "-m", "mlops_helpers.serving", "--model", URI, "--port", "{port}"]
    command += ["--log", str(ws.path(name, log_name))]
    return processes.start(command, name=name, health_path="/health", timeout=120)


@pytest.fixture(scope="module")
def live(champion):
    ws, _ = champion
    server = _serve(ws, "course-service", "predictions.jsonl")
    yield server
    server.stop()


def test_the_command_line_serves_over_http(live, record, champion):
    _, version = champion
    health = requests.get(live.url + "/health", timeout=5).json()
    assert health["version"] == str(version.version) and health["alias"] == "champion"
    assert requests.post(live.url + "/predict", json=record, timeout=5).status_code == 200
    bad = requests.post(live.url + "/predict", json=[record], timeout=5)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "record"]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_fuzzing_the_openapi_finds_no_server_error(live, mode):
    # schemathesis's pytest plugin (`from_fixture`) does not work with pytest 9 yet: drive its strategies directly.
    from schemathesis.generation.modes import GenerationMode

    schema = schemathesis.openapi.from_url(live.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {(op.method.upper(), op.path) for op in operations} == {
        ("GET", "/health"),
        ("POST", "/predict"),
        ("GET", "/routing"),
        ("PUT", "/routing"),
        ("POST", "/reload"),
        # the protocols clients already speak (tests/test_protocols.py)
        ("POST", "/invocations"),
        ("GET", "/ping"),
        ("GET", "/version"),
        ("GET", "/v2"),
        ("GET", "/v2/health/live"),
        ("GET", "/v2/health/ready"),
        ("GET", "/v2/models/{name}"),
        ("GET", "/v2/models/{name}/ready"),
        ("POST", "/v2/models/{name}/infer"),
    }
    failures = []
    for operation in operations:
        if mode == "negative" and (operation.method.upper() == "GET" or operation.path == "/reload"):
            continue  # GETs (a path's model name is any string) and /reload take no body: there is nothing to break

        @given(case=operation.as_strategy(generation_mode=GenerationMode(mode)))
        @settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def call(case):
            response = case.call(timeout=10)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.path} {case.body!r:.200} -> {response.status_code}")

        call()
    assert not failures, failures[:5]
    assert requests.get(live.url + "/health", timeout=5).status_code == 200


def test_eight_clients_for_twenty_seconds_without_an_error(live, frame):
    log_path = live.command[live.command.index("--log") + 1]
    before = len(read_jsonl(log_path))
    records = frame.to_dict(orient="records")
    sent_rows, errors, lock = [0], [], threading.Lock()
    stop_at = time.monotonic() + 20

    def client(seed: int) -> None:
        rng = np.random.default_rng(seed)
        with requests.Session() as session:
            while time.monotonic() < stop_at:
                size = int(rng.integers(1, 5))
                body = records[0] if size == 1 else {"records": records[:size]}
                try:
                    response = session.post(live.url + "/predict", json=body, timeout=10)
                    ok = response.status_code == 200 and len(response.json()["predictions"]) == size
                except requests.RequestException as exc:
                    ok, response = False, exc
                with lock:
                    if ok:
                        sent_rows[0] += size
                    else:
                        errors.append(str(response)[:200])

    threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:5]
    assert sent_rows[0] > 0
    assert len(read_jsonl(log_path)) - before == sent_rows[0]
    assert live.alive


def test_a_killed_service_keeps_every_answered_prediction(champion, record):
    ws, _ = champion
    server = _serve(ws, "killed-service", "predictions.jsonl")
    answered = []
    with requests.Session() as session:
        for _ in range(50):
            answered.append(session.post(server.url + "/predict", json=record, timeout=5).json()["request_id"])
    os.kill(server.pid, signal.SIGKILL)  # no clean shutdown: what is answered must already be on disk
    assert server.stop() == -signal.SIGKILL
    logged = [r["request_id"] for r in read_jsonl(ws.root / "killed-service" / "predictions.jsonl")]
    assert logged == answered


# -- request limits: refused before parsing, big bodies parsed off the event loop -----------------------------------


@pytest.mark.parametrize(("method", "path"), [("post", "/predict"), ("put", "/routing"), ("post", "/reload")])
def test_a_body_over_the_limit_is_refused_on_every_route_before_it_is_read(client, method, path):
    huge = b"x" * (MAX_BODY_BYTES + 1)
    answer = client.request(method.upper(), path, content=huge, headers={"Content-Type": "application/json"})
    assert answer.status_code == 413
    (error,) = answer.json()["detail"]
    assert error["type"] == "too_large" and f"{MAX_BODY_BYTES + 1:,} bytes" in error["msg"]
    assert f"at most {MAX_BODY_BYTES:,} bytes" in error["msg"] and "smaller batches" in error["msg"]


def test_a_chunked_body_is_refused_once_it_passes_the_limit(client):
    sent = []

    def chunks():
        for _ in range(MAX_BODY_BYTES // 65536 + 10):
            sent.append(1)
            yield b"x" * 65536

    answer = client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert answer.status_code == 413 and "passed the limit while it was being sent" in answer.text


def test_a_record_without_a_json_content_type_gets_415_saying_what_to_send(client, record):
    for headers in ({}, {"Content-Type": "text/plain"}, {"Content-Type": "application/x-www-form-urlencoded"}):
        answer = client.post("/predict", content=json.dumps(record), headers=headers)
        assert answer.status_code == 415, headers
        (error,) = answer.json()["detail"]
        assert error["type"] == "unsupported_media_type" and "'Content-Type: application/json'" in error["msg"]
    charset = client.post(
        "/predict", content=json.dumps(record), headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert charset.status_code == 200


def test_a_small_app_limit_is_stated_and_kept(champion, loaded, record, tmp_path):
    from fastapi.testclient import TestClient

    service = PredictionService(URI, log_path=tmp_path / "small.jsonl", model=loaded)
    with TestClient(create_app(service, max_body=100)) as small:
        assert small.post("/predict", json=record).status_code == 413
        assert small.post("/predict", json={"hr": 1}).status_code == 422  # under the limit: parsed as before
    assert "413" in create_app(service, max_body=100).openapi()["paths"]["/predict"]["post"]["responses"]


@pytest.mark.parametrize(
    "text",
    [
        '{"records": [{"a": 1}, {"b": [1, 2]} , {"c": "]"}]}',
        '  {"records":[ {"a": 1.5e3},{"a": null} ]  }  ',
        '{"records": []}',
        '{"records": [{"a": 1}], "extra": 2}',
        '{"other": [1]}',
        "[1, 2]",
    ],
)
def test_parse_json_gives_what_json_loads_gives(text, monkeypatch):
    from mlops_helpers.serving import limits

    monkeypatch.setattr(limits, "INCREMENTAL_BYTES", 0)  # parse these small bodies record by record too
    assert limits.parse_json(text.encode()) == json.loads(text)


@pytest.mark.parametrize("text", ['{"records": [{"a": 1},]}', '{"records": [{"a": 1} {"b": 2}]}', '{"records": [1'])
def test_parse_json_raises_what_json_loads_raises(text, monkeypatch):
    from mlops_helpers.serving import limits

    monkeypatch.setattr(limits, "INCREMENTAL_BYTES", 0)
    with pytest.raises(json.JSONDecodeError) as ours:
        limits.parse_json(text.encode())
    with pytest.raises(json.JSONDecodeError) as theirs:
        json.loads(text)
    assert str(ours.value) == str(theirs.value)


def test_a_big_batch_is_validated_in_slices_with_errors_at_their_place_in_the_batch(client, frame, loaded):
    rows = frame.to_dict(orient="records") * (MAX_BATCH // len(frame))
    assert len(rows) > 10 * SLICE
    answer = client.post("/predict", json={"records": rows})
    assert answer.status_code == 200
    assert np.allclose(answer.json()["predictions"], np.tile(loaded.predict(frame), MAX_BATCH // len(frame)))
    broken = [dict(row) for row in rows]
    broken[7342]["hr"] = "noon"
    refused = client.post("/predict", json={"records": broken})
    assert refused.status_code == 422
    assert [e["loc"] for e in refused.json()["detail"]] == [["body", "batch", "records", 7342, "hr"]]
    too_many = client.post("/predict", json={"records": rows + rows[:1]})
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["type"] == "too_long"
