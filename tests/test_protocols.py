"""The protocols clients already speak: MLflow's scoring protocol and the Open Inference Protocol v2, with real clients.

A champion is registered once for the module; the course's service and ``mlflow models serve`` both serve it on
loopback, and every format of ``/invocations`` must give exactly what ``mlflow models serve`` gives for the same rows.
MLflow's own ``ScoringServerClient`` and Triton's ``tritonclient.http`` (an OIP v2 client) talk to the service.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pandas as pd
import pytest
import requests

from mlops_helpers import catchup, data, processes, workspace
from mlops_helpers.jsonl import read_jsonl
from mlops_helpers.names import MODEL_NAME
from mlops_helpers.serving import protocols
from mlops_helpers.serving.contract import Column

URI = f"models:/{MODEL_NAME}@champion"


@pytest.fixture(scope="module")
def champion(tmp_path_factory, module_tracking_env):
    root = tmp_path_factory.mktemp("protocols") / "workspace"
    ws = workspace.setup(root)
    return ws, catchup.ensure_champion(ws)


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """20 real hours of March 2011 (a plain index: the split format carries it)."""
    X, _ = data.xy(data.window(data.load_bikes(), data.VALIDATION_START, data.TRAIN_WINDOW.end))
    return X.head(20).reset_index(drop=True)


@pytest.fixture(scope="module")
def service(champion):
    ws, _ = champion
    command = [sys.executable, "-m", "mlops_helpers.serving", "--model", URI, "--port", "{port}"]
    command += ["--log", str(ws.path("protocols", "predictions.jsonl"))]
    with processes.start(command, name="course-service", health_path="/health", timeout=120) as server:
        yield server


@pytest.fixture(scope="module")
def mlflow_serve(champion):
    command = ["mlflow", "models", "serve", "-m", URI, "--env-manager", "local", "--host", "{host}", "--port", "{port}"]
    with processes.start(command, name="mlflow-models-serve", health_path="/ping", timeout=120) as server:
        yield server


def _bodies(frame: pd.DataFrame) -> dict[str, tuple[str, bytes | str]]:
    """Every request format ``mlflow models serve`` takes, for the same rows: ``{name: (content type, body)}``."""
    import json

    records, columns = frame.to_dict("records"), frame.to_dict(orient="list")
    parquet = io.BytesIO()
    frame.to_parquet(parquet)
    as_json = {
        "dataframe_split": {"dataframe_split": frame.to_dict(orient="split")},
        "dataframe_split without index": {"dataframe_split": {"columns": list(frame), "data": frame.values.tolist()}},
        "dataframe_records": {"dataframe_records": records},
        "instances as records": {"instances": records},
        "instances as columns": {"instances": columns},
        "inputs as columns": {"inputs": columns},
        "inputs as records": {"inputs": records},
        "with empty params": {"dataframe_records": records, "params": {}},
    }
    bodies = {name: (protocols.JSON, json.dumps(body)) for name, body in as_json.items()}
    bodies["CSV"] = (protocols.CSV, frame.to_csv(index=False))
    bodies["CSV with pandas' index"] = (protocols.CSV, frame.to_csv())
    bodies["CSV with a charset"] = ("text/csv; charset=utf-8", frame.to_csv(index=False))
    bodies["Parquet"] = (protocols.PARQUET, parquet.getvalue())
    return bodies


def test_every_format_predicts_what_mlflow_models_serve_predicts(service, mlflow_serve, frame):
    differ, theirs_all = {}, None
    for name, (content_type, body) in _bodies(frame).items():
        headers = {"Content-Type": content_type}
        ours = requests.post(service.url + "/invocations", data=body, headers=headers, timeout=10)
        theirs = requests.post(mlflow_serve.url + "/invocations", data=body, headers=headers, timeout=10)
        assert (ours.status_code, theirs.status_code) == (200, 200), (name, ours.text[:300], theirs.text[:300])
        assert set(ours.json()) == set(theirs.json()) == {"predictions"}
        if ours.json()["predictions"] != theirs.json()["predictions"]:
            differ[name] = (ours.json()["predictions"][:3], theirs.json()["predictions"][:3])
        theirs_all = theirs.json()["predictions"]
    assert not differ, differ
    assert len(theirs_all) == len(frame) and len(set(theirs_all)) > 1  # real, varied predictions were compared


def test_one_record_in_inputs_and_the_health_endpoints(service, mlflow_serve, frame):
    body = {"inputs": frame.iloc[0].to_dict()}
    ours = requests.post(service.url + "/invocations", json=body, timeout=10).json()
    theirs = requests.post(mlflow_serve.url + "/invocations", json=body, timeout=10).json()
    assert ours == theirs and len(ours["predictions"]) == 1
    for path in ("/ping", "/version"):
        mine, original = requests.get(service.url + path, timeout=5), requests.get(mlflow_serve.url + path, timeout=5)
        assert (mine.status_code, mine.text) == (original.status_code, original.text), path


def test_mlflows_own_client_works_against_the_service(service, mlflow_serve, frame):
    from mlflow.deployments import PredictionsResponse
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    answers = {}
    for name, server in (("course service", service), ("mlflow models serve", mlflow_serve)):
        client = ScoringServerClient("127.0.0.1", server.port)
        client.wait_server_ready(timeout=30)
        assert client.get_version() == requests.get(mlflow_serve.url + "/version", timeout=5).text
        response = client.invoke(frame)  # sends the DataFrame as dataframe_split
        assert isinstance(response, PredictionsResponse)
        answers[name] = np.asarray(response.get_predictions(predictions_format="ndarray")).reshape(-1)
        records = client.invoke(frame.head(3).to_dict("records"))  # a list of records, sent as `inputs`
        answers[name + " (records)"] = np.asarray(records.get_predictions(predictions_format="ndarray")).reshape(-1)
    assert np.array_equal(answers["course service"], answers["mlflow models serve"])
    assert np.array_equal(answers["course service (records)"], answers["mlflow models serve (records)"])


def test_an_oip_v2_client_gets_the_same_predictions(service, mlflow_serve, frame):
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{service.port}")
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(MODEL_NAME)
    metadata = client.get_model_metadata(MODEL_NAME)
    assert [i["name"] for i in metadata["inputs"]] == list(frame.columns)
    assert metadata["outputs"] == [{"name": "predict", "datatype": "FP64", "shape": [-1]}]
    inputs = []
    for column in frame.columns:  # one FP64 tensor per column, as MLServer's pandas codec sends a DataFrame
        tensor = triton.InferInput(column, [len(frame)], "FP64")
        tensor.set_data_from_numpy(frame[column].to_numpy(dtype="float64"), binary_data=False)
        inputs.append(tensor)
    result = client.infer(MODEL_NAME, inputs, outputs=[triton.InferRequestedOutput("predict", binary_data=False)])
    theirs = requests.post(mlflow_serve.url + "/invocations", json={"dataframe_split": frame.to_dict("split")})
    assert np.array_equal(result.as_numpy("predict"), np.asarray(theirs.json()["predictions"]))
    assert result.get_response()["model_version"] == metadata["versions"][0]
    with pytest.raises(triton.InferenceServerException, match="unknown model"):
        client.infer("another-model", inputs)
    client.close()


def test_one_matrix_tensor_in_signature_order_and_nested_data(service, frame):
    matrix = {"name": "input-0", "shape": [len(frame), frame.shape[1]], "datatype": "FP64"}
    flat = requests.post(
        f"{service.url}/v2/models/{MODEL_NAME}/infer",
        json={"inputs": [{**matrix, "data": frame.values.ravel().tolist()}]},
    )
    nested = requests.post(
        f"{service.url}/v2/models/{MODEL_NAME}/infer", json={"inputs": [{**matrix, "data": frame.values.tolist()}]}
    )
    by_column = requests.post(
        service.url + "/invocations", json={"dataframe_split": {"columns": list(frame), "data": frame.values.tolist()}}
    )
    assert flat.status_code == nested.status_code == 200, flat.text
    assert flat.json()["outputs"][0]["data"] == nested.json()["outputs"][0]["data"] == by_column.json()["predictions"]


def test_both_protocols_log_every_row_and_are_counted_by_path(service, frame):
    log = service.command[service.command.index("--log") + 1]
    before = len(read_jsonl(log))
    scoring = requests.post(service.url + "/invocations", json={"dataframe_records": frame.head(2).to_dict("records")})
    inputs = [{"name": c, "shape": [1], "datatype": "FP64", "data": [float(frame[c][0])]} for c in frame.columns]
    v2 = requests.post(f"{service.url}/v2/models/{MODEL_NAME}/infer", json={"id": "r1", "inputs": inputs})
    assert v2.json()["id"] == "r1" and v2.headers["X-Variant"] == "champion"
    rows = read_jsonl(log)[before:]
    assert [r["request_id"] for r in rows] == [scoring.headers["X-Request-ID"]] * 2 + [v2.headers["X-Request-ID"]]
    metrics = requests.get(service.url + "/metrics", timeout=5).text
    assert 'http_requests_total{path="/invocations",status="200"}' in metrics
    assert 'http_requests_total{path="/v2/models/{name}/infer",status="200"}' in metrics


def _formats_named(message: str) -> bool:
    return all(name in message for name in (*protocols.FORMATS, "text/csv", "application/vnd.apache.parquet"))


WRONG_SCORING = {
    "/predict's batch": ({"records": [{}]}, 400),
    "a bare list": ([{"hr": 1}], 400),
    "two formats": ({"dataframe_records": [], "instances": []}, 400),
    "no format": ({}, 400),
    "a misspelt format": ({"dataframe_record": []}, 400),
}


@pytest.mark.parametrize("case", WRONG_SCORING, ids=list(WRONG_SCORING))
def test_a_body_in_the_wrong_format_is_told_the_formats_accepted(service, case):
    body, status = WRONG_SCORING[case]
    response = requests.post(service.url + "/invocations", json=body, timeout=5)
    assert response.status_code == status, response.text
    assert response.json()["error_code"] == "BAD_REQUEST" and _formats_named(response.json()["message"])


@pytest.mark.parametrize("key", [*protocols.FORMATS, "params"])
def test_predict_points_other_protocols_to_their_endpoints(service, frame, key):
    """Before, /predict answered MLflow's formats with eleven "Field required" errors and no hint."""
    response = requests.post(service.url + "/predict", json={key: frame.head(1).to_dict("records")}, timeout=5)
    assert response.status_code == 422
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body"] and "/invocations" in error["msg"] and "/v2/models/" in error["msg"]
    assert '{"records": [...]}' in error["msg"]


def test_other_content_types_and_broken_bodies(service):
    plain = requests.post(service.url + "/invocations", data="hr=8", headers={"Content-Type": "text/plain"})
    assert plain.status_code == 415 and _formats_named(plain.json()["message"])
    broken = requests.post(service.url + "/invocations", data="{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400 and _formats_named(broken.json()["message"])
    for content_type, body in ((protocols.CSV, "hr,temp\n"), (protocols.PARQUET, b"PAR1 not really")):
        refused = requests.post(service.url + "/invocations", data=body, headers={"Content-Type": content_type})
        assert refused.status_code == 400, refused.text


def test_rows_meet_the_same_contract_as_predict(service, frame):
    """Strings for numbers, NaN, unknown or missing columns: refused as /predict refuses them, naming row and field
    (mlflow models serve would coerce "8" to 8.0 and ignore an unknown column)."""
    record = frame.iloc[0].to_dict()
    cases = {
        "a number as a string": ([record, {**record, "hr": "8"}], [1, "hr"], "valid number"),
        "an unknown column": ([{**record, "temperature": 1.0}], [0, "temperature"], "not permitted"),
        "a missing column": ([{k: v for k, v in record.items() if k != "temp"}], [0, "temp"], "required"),
    }
    for name, (rows, where, message) in cases.items():
        response = requests.post(service.url + "/invocations", json={"dataframe_records": rows}, timeout=5)
        assert response.status_code == 400, name
        detail = response.json()["detail"][0]
        assert detail["loc"] == ["body", "dataframe_records", *where] and message in detail["msg"], (name, detail)
    nan = '{"dataframe_split": {"columns": ["hr"], "data": [[NaN]]}}'
    refused = requests.post(service.url + "/invocations", data=nan, headers={"Content-Type": "application/json"})
    assert refused.status_code == 400 and refused.json()["detail"][0]["loc"][:3] == ["body", "dataframe_split", 0]
    csv = frame.head(2).to_csv(index=False).replace(str(frame["temp"][1]), "warm", 1)
    text = requests.post(service.url + "/invocations", data=csv, headers={"Content-Type": "text/csv"}).json()
    assert text["detail"][0]["loc"] == ["body", "csv", 1, "temp"]


def _v2(name: str, datatype: str, shape: list, values: list) -> dict:
    return {"inputs": [{"name": name, "shape": shape, "datatype": datatype, "data": values}]}


WRONG_V2 = {
    "no inputs": ({"id": "x"}, "inputs"),
    "a shape that does not fit the data": (_v2("hr", "FP64", [2], [1]), "shape [2]"),
    "an unknown input": (_v2("hour", "FP64", [1], [1]), "hour"),
    "text for a number": (_v2("hr", "BYTES", [1], ["8"]), "FP64"),
    "an unknown datatype": (_v2("hr", "FLOAT", [1], [8]), "FP64"),
    "a missing column": (_v2("hr", "FP64", [1], [8]), "required"),
    "MLflow's format": ({"dataframe_records": [{"hr": 8}]}, "one tensor per column"),
}


@pytest.mark.parametrize("case", WRONG_V2, ids=list(WRONG_V2))
def test_v2_refusals_say_what_to_send(service, case):
    body, words = WRONG_V2[case]
    response = requests.post(f"{service.url}/v2/models/{MODEL_NAME}/infer", json=body, timeout=5)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]


def test_parsing_without_http():
    """The parsers alone: each format to the same rows; the strictness is the contract's, not the parser's."""
    columns = [Column("a", "double"), Column("n", "long"), Column("ok", "boolean"), Column("city", "string")]
    rows = [{"a": 1.5, "n": 2, "ok": True, "city": "DC"}, {"a": 2.0, "n": 3, "ok": False, "city": "NY"}]
    split = {"dataframe_split": {"columns": ["a", "n", "ok", "city"], "data": [list(r.values()) for r in rows]}}
    for body in (split, {"dataframe_records": rows}, {"instances": rows},
                 {"inputs": {k: [r[k] for r in rows] for k in rows[0]}}):  # fmt: skip
        assert protocols.json_rows(body, columns) == rows, body
    assert protocols.csv_rows(b"a,n,ok,city\n1.5,2,true,DC\n2,3,False,NY\n", columns) == rows
    assert protocols.csv_rows(b"a,n,ok,city\n,x,maybe,1\n", columns) == [{"a": None, "n": "x", "ok": "maybe",
                                                                           "city": "1"}]  # fmt: skip
    tensors = [{"name": c.name, "shape": [2, 1], "datatype": dt, "data": [[r[c.name]] for r in rows]}
               for c, dt in zip(columns, ("FP64", "INT64", "BOOL", "BYTES"), strict=True)]  # fmt: skip
    assert protocols.infer_rows({"inputs": tensors}, columns) == rows
    assert protocols.metric_path("/v2/models/anything/infer") == "/v2/models/{name}/infer"
    assert protocols.metric_path("/v2/models/x/versions/3/ready") == "/v2/models/{name}/ready"
    assert protocols.metric_path("/wp-admin") == "other"
