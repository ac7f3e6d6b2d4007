"""Notebook 04's checks: each says "not yet" on the empty answer, names what is wrong in a typical wrong one, and
passes the answer computed as the solution does, on real state: a registered champion (a small model, trained here),
the notebook's own minimal service run as the solution changes it (three uvicorn starts, 20-40 s in all), and the
course's production service (in-process) for the prediction log and the metrics."""

from __future__ import annotations

import json
import sys

import mlflow
import nbformat
import numpy as np
import pytest
import requests
from exercise_checks import not_yet, passes

from mlops_helpers import REPO_ROOT, data, environment, exercises, models, processes, workspace
from mlops_helpers.names import MODEL_NAME

URI = f"models:/{MODEL_NAME}@champion"
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


@pytest.fixture(scope="module")
def champion(tmp_path_factory, module_tracking_env):
    """A workspace with a small tree model registered as the champion (trees in float32, as the course's models)."""
    from mlflow.models import infer_signature
    from sklearn.ensemble import GradientBoostingRegressor

    ws = workspace.setup(tmp_path_factory.mktemp("nb04") / "workspace", experiment="nb04-exercises")
    X, y = data.xy(data.window(data.load_bikes(), *data.TRAIN_WINDOW))
    model = GradientBoostingRegressor(n_estimators=10, max_depth=3, random_state=0).fit(X, y)
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(
            model, name="model", signature=infer_signature(X, model.predict(X)),
            pip_requirements=environment.model_requirements(), skops_trusted_types=models.TRUSTED_TYPES,
        )  # fmt: skip
    version = mlflow.register_model(info.model_uri, MODEL_NAME)
    mlflow.MlflowClient().set_registered_model_alias(MODEL_NAME, "champion", version.version)
    week = X.loc["2011-03-01":"2011-03-07"]
    return ws, str(version.version), week


@pytest.fixture(scope="module")
def minimal(champion):
    """The notebook's minimal service (its %%writefile cell), in the workspace, and the lesson's bad requests."""
    ws, _, week = champion
    notebook = nbformat.read(REPO_ROOT / "notebooks" / "04_model_serving.ipynb", as_version=4)
    source = next(c.source for c in notebook.cells if "%%writefile {service_file}" in c.source)
    service_file = ws.root / "services" / "minimal_service.py"
    service_file.parent.mkdir(exist_ok=True)
    service_file.write_text(source.split("%%writefile {service_file}\n", 1)[1])
    record = week.iloc[0].to_dict()
    bad_requests = {
        "missing column": {"records": [{k: v for k, v in record.items() if k != "temp"}]},
        "wrong type": {"records": [{**record, "temp": "warm"}]},
        "number as text": {"records": [{**record, "temp": "0.5"}]},
        "misspelt column": {"records": [{**record, "temperature": 20.0}]},
        "NaN": {"records": [{**record, "temp": float("nan")}]},
        "too large for the model": {"records": [{**record, "temp": 1e308}]},
        "empty batch": {"records": []},
    }
    command = [sys.executable, "-m", "uvicorn", "minimal_service:app", "--app-dir", str(service_file.parent),
               "--host", "{host}", "--port", "{port}"]  # fmt: skip
    return service_file, bad_requests, command


def _post(url: str, body) -> requests.Response:
    return requests.post(url + "/predict", data=json.dumps(body), headers={"Content-Type": "application/json"},
                         timeout=30)  # fmt: skip


def test_strict_service(champion, minimal):
    ws, _, _ = champion
    service_file, bad_requests, command = minimal
    logs = ws.root / "logs"
    q1 = exercises.notebook_04(MODEL_NAME, bad_requests, ws.root / "none.jsonl", "", logs)[0]
    all_422 = dict.fromkeys(bad_requests, 422)
    not_yet(q1.check(...), "no answer")
    not_yet(q1.check({"NaN": 500}), "lacks the key(s)", "missing column")
    not_yet(q1.check({**all_422, "number as text": 200}), "'number as text' still gets 200", "strict=True")
    not_yet(q1.check({**all_422, "misspelt column": 200}), "extra='forbid'")
    not_yet(q1.check(all_422), "no log strict-service.log", "name='strict-service'")
    # the solution's change, run as the solution runs it
    strict_source = (
        service_file.read_text()
        .replace(
            'create_model("Record", ',
            'create_model("Record", __config__=ConfigDict(extra="forbid", strict=True, allow_inf_nan=False), ',
        )
        .replace("records=(list[Record], ...)", "records=(list[Record], Field(min_length=1))")
    )
    strict_file = service_file.with_name("strict_service.py")
    strict_file.write_text(strict_source.replace("import create_model", "import ConfigDict, Field, create_model"))
    strict_command = [part.replace("minimal_service:app", "strict_service:app") for part in command]
    with processes.start(strict_command, name="strict-service", env={"MODEL_URI": URI}, health_path="/health",
                         log_dir=logs, timeout=180) as strict:  # fmt: skip
        strict_bad = {what: _post(strict.url, body).status_code for what, body in bad_requests.items()}
    assert not strict.alive
    not_yet(q1.check(all_422), "your answer has 7 x 422, but the last run of strict-service answered 5 x 422, 2 x 500")
    not_yet(q1.check({**strict_bad, "empty batch": 500, "NaN": 422}), "'empty batch' gets 500, not 422", "min_length")
    verdict = q1.check(strict_bad)
    passes(verdict)
    assert "Out of range float values are not JSON compliant" in verdict.message, verdict.message


def test_mean_two_ways(champion):
    from fastapi.testclient import TestClient

    from mlops_helpers.serving import predlog
    from mlops_helpers.serving.app import create_app
    from mlops_helpers.serving.service import PredictionService

    ws, _, week = champion
    log_path = ws.root / "predictions" / "nb04-test.jsonl"
    with TestClient(create_app(PredictionService(URI, log_path=log_path))) as client:
        assert client.post("/predict", json={"records": week.to_dict(orient="records")}).status_code == 200
        assert client.post("/predict", json={"records": []}).status_code == 422  # refused: in neither
        exposition = client.get("/metrics").text
        log = predlog.log_frame(log_path)  # as the notebook reads them: the metrics text, then the log
        from_log = float(np.mean(log["prediction"]))
        later = client.post("/predict", json={"records": week.tail(5).to_dict(orient="records")})  # as the latency test
        assert later.status_code == 200
    q2 = exercises.notebook_04(MODEL_NAME, {}, log_path, exposition, ws.root / "logs")[1]
    everything = float(np.mean(predlog.log_frame(log_path)["prediction"]))
    not_yet(q2.check({"log": everything, "metrics": from_log}), f"all {len(week) + 5} rows the log holds now")
    not_yet(q2.check(None), "no answer")
    not_yet(q2.check({"log": from_log}), "lacks the key(s) ['metrics']")
    total = float(log["prediction"].sum())
    not_yet(q2.check({"log": from_log, "metrics": total}), "the sum of the predictions", "prediction_value_count")
    not_yet(q2.check({"log": float(log["prediction"].median()), "metrics": from_log}), "the median")
    not_yet(q2.check({"log": from_log, "metrics": from_log + 1}), "the mean from the metrics", "too high by 1")
    not_yet(q2.check({"log": str(from_log), "metrics": from_log}), "should be a float")
    passes(q2.check({"log": from_log, "metrics": total / len(log)}))


def test_version_uri(champion, minimal):
    ws, version, _ = champion
    service_file, _, command = minimal
    q3 = exercises.notebook_04(MODEL_NAME, {}, ws.root / "none.jsonl", "", ws.root / "logs")[2]
    by_version = {"MODEL_URI": f"models:/{MODEL_NAME}/{version}"}
    try:
        with processes.start(command, name="minimal-by-version", env=by_version, health_path="/health",
                             log_dir=ws.root / "logs", timeout=180):  # fmt: skip
            raise AssertionError("the unchanged service started with a version URI")
    except processes.ServerError as failed:
        error = failed  # (the name `failed` ends with the except block)
        start_error = [line for line in str(failed).splitlines() if line.startswith("ValueError")][-1]
    either_source = service_file.read_text().replace(
        'name, alias = os.environ["MODEL_URI"].removeprefix("models:/").split("@")\n'
        "version = mlflow.MlflowClient().get_model_version_by_alias(name, alias).version\n",
        'uri = os.environ["MODEL_URI"].removeprefix("models:/")\n'
        'name, alias = uri.split("@") if "@" in uri else (uri.split("/")[0], None)\n'
        'version = mlflow.MlflowClient().get_model_version_by_alias(name, alias).version if alias else uri.split("/")[1]\n',  # noqa: E501
    )
    either_file = service_file.with_name("either_service.py")
    either_file.write_text(either_source)
    either_command = [part.replace("minimal_service:app", "either_service:app") for part in command]
    with processes.start(either_command, name="either-service", env=by_version, health_path="/health",
                         log_dir=ws.root / "logs", timeout=180) as either:  # fmt: skip
        pinned_health = requests.get(either.url + "/health", timeout=5).json()
    assert not processes.running()
    not_yet(q3.check(..., pinned_health), "no answer")
    not_yet(q3.check("it crashed", pinned_health), "not enough values to unpack")
    not_yet(q3.check(start_error, {**pinned_health, "alias": "champion"}), "still resolved the alias 'champion'")
    not_yet(q3.check(start_error, {**pinned_health, "version": "99"}), "no version '99'")
    not_yet(q3.check(start_error, {"status": "ok"}), "lacks the key(s)")
    passes(q3.check(start_error, pinned_health))
    passes(q3.check(error, pinned_health))  # the exception itself is an answer too
