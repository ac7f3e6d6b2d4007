"""The protocols clients already speak, beside ``/predict``: MLflow's scoring protocol and the Open Inference Protocol.

- **MLflow's scoring protocol** (what ``mlflow models serve``, MLServer's MLflow runtime and
  ``mlflow.pyfunc.scoring_server.client.ScoringServerClient`` speak): ``POST /invocations`` with a JSON body holding
  exactly one of ``dataframe_split``, ``dataframe_records``, ``instances`` or ``inputs``, or a CSV table
  (``text/csv``), or a Parquet file (``application/vnd.apache.parquet``); answers ``{"predictions": [...]}``.
  ``GET /ping`` and ``GET /version`` as MLflow's server answers them.
- **The Open Inference Protocol v2** (KServe, MLServer, Triton; ``tritonclient`` is one client):
  ``GET /v2/health/live|ready``, ``GET /v2/models/{name}[/versions/{v}]`` (metadata), ``.../ready`` and
  ``POST /v2/models/{name}[/versions/{v}]/infer`` with one tensor per column (``shape [N]`` or ``[N, 1]``, MLServer's
  pandas codec) or one ``[N, columns]`` tensor in the signature's column order.

This module turns those bodies into rows (dicts of the JSON values, nothing coerced) and the service's answers back
into each protocol's body; the routes are in :mod:`~mlops_helpers.serving.app`. Rows are validated by the same
pydantic ``Record`` that ``/predict`` uses (:func:`validated`): the same strictness whatever the protocol. A body in
a shape no protocol accepts gets a 4xx whose message names the formats that are accepted, never a 5xx.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import math
import re
from typing import Any

from mlops_helpers.serving.contract import MAX_BATCH, Column
from mlops_helpers.serving.service import Refusal

# --------------------------------------------------------------------------------------------- MLflow's protocol
JSON, CSV, PARQUET = "application/json", "text/csv", "application/vnd.apache.parquet"
#: What ``POST /invocations`` accepts, by content type (CSV and Parquet are not JSON: keep them allowed).
CONTENT_TYPES = (JSON, CSV, PARQUET)
FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
ACCEPTED = (
    "send JSON (application/json) with exactly one of the keys dataframe_split ({columns, data}), dataframe_records "
    "([{column: value}]), instances ([{column: value}] or {column: [values]}) or inputs ({column: [values]}, "
    "[{column: value}] or one {column: value}), optionally with params; or a CSV table with a header row (text/csv); "
    "or a Parquet file (application/vnd.apache.parquet)"
)


#: What each error status means, for the OpenAPI document.
ERRORS = {
    400: "The body is in no accepted format, or a row breaks the model's signature: the message names the formats "
    "accepted, or the row and field",
    404: "No model of that name is served here",
    413: f"More than {MAX_BATCH} rows in one request",
    415: "A content type other than JSON, CSV or Parquet",
}


def bad(msg: str, loc: list, status: int = 400, kind: str = "value_error") -> Refusal:
    """A refusal of a request in a protocol's format (400 unless said otherwise)."""
    return Refusal(msg, ["body", *loc], status=status, kind=kind)


def mime(content_type: str | None) -> str:
    return (content_type or JSON).split(";")[0].strip().lower()


def scoring_rows(body: bytes, content_type: str | None, columns: list[Column]) -> tuple[list[dict], str]:
    """The rows of a ``POST /invocations`` body in any format ``mlflow models serve`` takes (see :data:`ACCEPTED`),
    and the name of that format (where the rows' errors are located)."""
    kind = mime(content_type)
    if kind == CSV:
        return csv_rows(body, columns), "csv"
    if kind == PARQUET:
        return parquet_rows(body), "parquet"
    if kind != JSON:
        msg = f"unsupported content type {kind!r}: {ACCEPTED}"
        raise Refusal(msg, ["header", "content-type"], status=415, kind="unsupported_media_type")
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad(f"the body is not valid JSON ({exc}): {ACCEPTED}", [], kind="json_invalid") from None
    rows = json_rows(payload, columns)
    return rows, next(k for k in payload if k in FORMATS)


def json_rows(payload: Any, columns: list[Column]) -> list[dict]:
    """The rows of a JSON scoring body: exactly one of :data:`FORMATS`, and ``params`` only if empty."""
    if not isinstance(payload, dict):
        raise bad(f"the body must be a JSON object, not {type(payload).__name__}: {ACCEPTED}", [])
    keys = [k for k in payload if k in FORMATS]
    unknown = sorted(set(payload) - set(FORMATS) - {"params"})
    if len(keys) != 1 or unknown:
        found = ", ".join(sorted(payload)) or "none"
        raise bad(f"found the keys {found}: {ACCEPTED}", [unknown[0] if unknown else "format"])
    if payload.get("params"):
        raise bad("this model takes no params: leave params out (or empty)", ["params"])
    key = keys[0]
    value = payload[key]
    reader = {"dataframe_split": split_rows, "dataframe_records": record_rows}.get(key, tensor_rows)
    return reader(value, [key], columns)


def split_rows(value: Any, loc: list, columns: list[Column]) -> list[dict]:
    """``{"columns": [...], "data": [[...], ...]}`` (pandas' ``orient="split"``; an ``index`` is ignored)."""
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("columns"), list)
        or not isinstance(value.get("data"), list)
    ):
        raise bad("dataframe_split must be an object with columns (names) and data (a list of rows)", loc)
    extra = sorted(set(value) - {"columns", "data", "index"})
    if extra:
        raise bad(f"dataframe_split takes columns, data and index, not {extra[0]!r}", [*loc, extra[0]])
    names = value["columns"]
    rows = []
    for i, row in enumerate(value["data"]):
        if not isinstance(row, list) or len(row) != len(names):
            raise bad(f"each row of data must be a list of {len(names)} values, one per column", [*loc, "data", i])
        rows.append(dict(zip(names, row, strict=True)))
    return rows


def record_rows(value: Any, loc: list, columns: list[Column]) -> list[dict]:
    """``[{column: value}, ...]``."""
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise bad("expected a list of records [{column: value}, ...]", loc)
    return value


def tensor_rows(value: Any, loc: list, columns: list[Column]) -> list[dict]:
    """TF-serving style ``instances``/``inputs``: records, columns ``{column: [values]}``, or one record (inputs)."""
    if isinstance(value, list):
        if value and not all(isinstance(r, dict) for r in value):
            raise bad("rows must be records [{column: value}] or columns {column: [values]}, not bare lists", loc)
        return value
    if not isinstance(value, dict):
        raise bad("expected records [{column: value}] or columns {column: [values]}", loc)
    if all(not isinstance(v, list) for v in value.values()) and loc == ["inputs"]:
        return [value]  # one record
    lengths = {len(v) if isinstance(v, list) else None for v in value.values()}
    if len(lengths) != 1 or None in lengths:
        raise bad("every column must be a list of values, all of the same length", loc)
    n = lengths.pop()
    return [{name: values[i] for name, values in value.items()} for i in range(n)]


def csv_rows(body: bytes, columns: list[Column]) -> list[dict]:
    """A CSV table with a header row; values are read by the signature's column types (a leading unnamed column,
    pandas' index from ``to_csv()``, is dropped). A value that is not of its column's type stays text, so the
    contract refuses it by name."""
    try:
        table = list(csv.reader(io.StringIO(body.decode("utf-8"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise bad(f"the CSV body cannot be read ({exc}): {ACCEPTED}", ["csv"]) from None
    if len(table) < 2:
        raise bad("the CSV body needs a header row and at least one row of values", ["csv"])
    header, data = table[0], table[1:]
    skip = 1 if header and header[0] == "" else 0
    types = {c.name: c.mlflow_type for c in columns}
    rows = []
    for i, values in enumerate(data):
        if len(values) != len(header):
            raise bad(f"row {i + 1} has {len(values)} values for {len(header)} columns", ["csv", i])
        cells = zip(header[skip:], values[skip:], strict=True)
        rows.append({name: from_text(text, types.get(name)) for name, text in cells})
    return rows


def from_text(text: str, mlflow_type: str | None) -> Any:
    """A CSV cell as its column's type: ``""`` is missing (None); text that does not parse stays text."""
    if text == "":
        return None
    try:
        if mlflow_type in ("double", "float"):
            return float(text)
        if mlflow_type in ("long", "integer"):
            return int(text)
    except ValueError:
        return text
    if mlflow_type == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def parquet_rows(body: bytes) -> list[dict]:
    """A Parquet file, as ``DataFrame.to_parquet()`` writes it."""
    import pandas as pd

    try:
        frame = pd.read_parquet(io.BytesIO(body))
    except Exception as exc:  # pyarrow raises many types for a damaged file: all mean the same to the client
        raise bad(f"the body is not a Parquet file ({type(exc).__name__}): {ACCEPTED}", ["parquet"]) from None
    return frame.to_dict("records")  # native Python values; NaN stays NaN and the contract refuses it


def scoring_answer(predictions: list[float]) -> dict:
    return {"predictions": predictions}


def scoring_error(refusal: Refusal) -> dict:
    """MLflow's error body (``error_code``, ``message``) plus the service's ``detail`` (``loc``, ``msg``, ``type``)."""
    first = refusal.errors[0]
    where = ".".join(str(p) for p in first["loc"][1:])
    message = f"{first['msg']} (at {where})" if where else first["msg"]
    code = "BAD_REQUEST" if refusal.status < 500 else "INTERNAL_ERROR"
    return {"error_code": code, "message": message, "detail": refusal.errors}


# --------------------------------------------------------------------------------------- Open Inference Protocol
#: OIP datatypes the service reads, by the MLflow column types they may fill (integers also fill float columns,
#: as ``/predict`` accepts them).
DATATYPES: dict[str, tuple[str, ...]] = {
    "FP64": ("double", "float"),
    "FP32": ("double", "float"),
    "FP16": ("double", "float"),
    **{f"INT{b}": ("double", "float", "long", "integer") for b in (8, 16, 32, 64)},
    **{f"UINT{b}": ("double", "float", "long", "integer") for b in (8, 16, 32, 64)},
    "BOOL": ("boolean",),
    "BYTES": ("string",),
}
OUTPUT = "predict"
V2_ACCEPTED = (
    "send {inputs: [{name, shape, datatype, data}]} with one tensor per column (shape [N] or [N, 1], named as the "
    "model's inputs: GET /v2/models/{name}) or one tensor of shape [N, columns] in the model's input order"
)


def datatype(column: Column) -> str:
    return {"double": "FP64", "float": "FP32", "long": "INT64", "integer": "INT32", "boolean": "BOOL",
            "string": "BYTES"}[column.mlflow_type]  # fmt: skip


def v2_metadata(name: str, version: str | None, columns: list[Column]) -> dict:
    """``GET /v2/models/{name}``: the inputs (one per column, as MLServer's pandas codec sends them) and output."""
    return {
        "name": name,
        "versions": [version] if version else [],
        "platform": "mlflow",
        "inputs": [{"name": c.name, "datatype": datatype(c), "shape": [-1]} for c in columns],
        "outputs": [{"name": OUTPUT, "datatype": "FP64", "shape": [-1]}],
    }


def flat(data: Any) -> list:
    """Row-major data, nested or already flat."""
    if isinstance(data, list) and any(isinstance(d, list) for d in data):
        return [x for d in data for x in (flat(d) if isinstance(d, list) else [d])]
    return data


def tensor(entry: Any, i: int) -> tuple[str, list[int], str, list]:
    """``(name, shape, datatype, flat data)`` of request input ``i``, checked against itself."""
    loc = ["inputs", i]
    if not isinstance(entry, dict) or not {"name", "shape", "datatype", "data"} <= set(entry):
        raise bad(f"each input needs name, shape, datatype and data: {V2_ACCEPTED}", loc)
    extra = sorted(set(entry) - {"name", "shape", "datatype", "data", "parameters"})
    if extra:
        raise bad(f"unknown field {extra[0]!r} in an input", [*loc, extra[0]])
    name, shape, kind, data = entry["name"], entry["shape"], entry["datatype"], flat(entry["data"])
    if not isinstance(shape, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                              for s in shape):  # fmt: skip
        raise bad("shape must be a list of non-negative integers", [*loc, "shape"])
    if kind not in DATATYPES:
        raise bad(f"datatype {kind!r} is not one of {', '.join(DATATYPES)}", [*loc, "datatype"])
    if not isinstance(data, list) or len(data) != math.prod(shape):
        raise bad(f"data holds {len(data) if isinstance(data, list) else 'no list of'} values for shape {shape}",
                  [*loc, "data"])  # fmt: skip
    return str(name), shape, kind, data


def infer_rows(payload: Any, columns: list[Column]) -> list[dict]:
    """The rows of an OIP v2 inference request (see :data:`V2_ACCEPTED`)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise bad(f"the body must be an object with a non-empty list of inputs: {V2_ACCEPTED}", ["inputs"])
    extra = sorted(set(payload) - {"id", "parameters", "inputs", "outputs"})
    if extra:
        raise bad(f"unknown field {extra[0]!r}: {V2_ACCEPTED}", [extra[0]])
    for j, output in enumerate(payload.get("outputs") or []):
        if not isinstance(output, dict) or output.get("name") != OUTPUT:
            raise bad(f"the model has one output, {OUTPUT!r}", ["outputs", j])
    tensors = [tensor(entry, i) for i, entry in enumerate(payload["inputs"])]
    if len(tensors) == 1 and len(tensors[0][1]) == 2 and tensors[0][1][1] == len(columns) and len(columns) > 1:
        return matrix_rows(tensors[0], columns)
    return column_rows(tensors, columns)


def matrix_rows(entry: tuple, columns: list[Column]) -> list[dict]:
    """One ``[N, columns]`` tensor, its columns in the signature's order."""
    _, shape, kind, data = entry
    for c in columns:
        check_type(kind, c, ["inputs", 0, "datatype"])
    width = shape[1]
    return [{c.name: data[r * width + j] for j, c in enumerate(columns)} for r in range(shape[0])]


def column_rows(tensors: list[tuple], columns: list[Column]) -> list[dict]:
    """One tensor per column, each of shape ``[N]`` or ``[N, 1]``."""
    by_name = {c.name: c for c in columns}
    names = [t[0] for t in tensors]
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise bad(f"unknown input {unknown[0]!r}: {V2_ACCEPTED}", ["inputs", names.index(unknown[0]), "name"])
    if len(set(names)) != len(names):
        raise bad("each input may be sent once", ["inputs"])
    lengths = set()
    for i, (name, shape, kind, data) in enumerate(tensors):
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise bad(f"input {name!r} must have shape [N] or [N, 1], not {shape}", ["inputs", i, "shape"])
        check_type(kind, by_name[name], ["inputs", i, "datatype"])
        lengths.add(len(data))
    if len(lengths) != 1:
        raise bad("every input must hold the same number of rows", ["inputs"])
    n = lengths.pop()
    return [{name: data[r] for name, _, _, data in tensors} for r in range(n)]


def check_type(kind: str, column: Column, loc: list) -> None:
    if column.mlflow_type not in DATATYPES[kind]:
        raise bad(f"input {column.name!r} is {column.mlflow_type}: send it as {datatype(column)}, not {kind}", loc)


def infer_answer(payload: dict, name: str, version: str | None, predictions: list[float]) -> dict:
    output = {"name": OUTPUT, "datatype": "FP64", "shape": [len(predictions)], "data": predictions}
    answer = {"model_name": name, "model_version": version, "outputs": [output]}
    if payload.get("id"):
        answer["id"] = str(payload["id"])
    return answer


def v2_error(refusal: Refusal) -> dict:
    """OIP's error body (``error``) plus the service's ``detail``."""
    return {"error": scoring_error(refusal)["message"], "detail": refusal.errors}


# ---------------------------------------------------------------------------- the endpoints' answers, without HTTP
def invocations(service, rows_of, body: bytes, content_type: str | None, key: str | None) -> tuple:
    """``POST /invocations``: ``(status, body, answer or None)``. Bad input is a 400 as MLflow answers it (413 for
    too many rows, 415 for another content type); the model's own refusal too."""
    try:
        rows, where = scoring_rows(body, content_type, service.columns)
        answer = service.predict(validated(rows_of, rows, [where]), key)
    except Refusal as refusal:
        return (400 if refusal.status == 422 else refusal.status), scoring_error(refusal), None
    return 200, scoring_answer(answer.predictions), answer


def known(service, name: str) -> None:
    if name != service.ref.name:
        msg = f"unknown model {name!r}: this service serves {service.ref.name!r}"
        raise Refusal(msg, ["path", "name"], status=404, kind="not_found")


def model_metadata(service, name: str) -> tuple:
    """``GET /v2/models/{name}``: ``(status, body)``."""
    try:
        known(service, name)
    except Refusal as refusal:
        return refusal.status, v2_error(refusal)
    return 200, v2_metadata(name, service.ref.version, service.columns)


def model_ready(service, name: str) -> tuple:
    """``GET /v2/models/{name}/ready``: ``(status, body)``."""
    try:
        known(service, name)
    except Refusal as refusal:
        return refusal.status, v2_error(refusal)
    return 200, {"name": name, "ready": True}


def infer(service, rows_of, name: str, body: bytes, key: str | None) -> tuple:
    """``POST /v2/models/{name}/infer``: ``(status, body, answer or None)``; errors as OIP's ``{"error": ...}``."""
    try:
        known(service, name)
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise bad(f"the body is not valid JSON ({exc}): {V2_ACCEPTED}", [], kind="json_invalid") from None
        rows = infer_rows(payload, service.columns)
        answer = service.predict(validated(rows_of, rows, ["inputs"]), key)
    except Refusal as refusal:
        return (400 if refusal.status == 422 else refusal.status), v2_error(refusal), None
    return 200, infer_answer(payload, name, answer.version, answer.predictions), answer


def other_protocol(body: Any, name: str, columns: list[Column]) -> dict | None:
    """For ``/predict``: the one error to give a body written for another protocol (None if it is not one, or if
    the model has a column of that name), naming the formats ``/predict`` accepts and where the other one goes."""
    keys = {*FORMATS, "params"} - {c.name for c in columns}
    if not isinstance(body, dict) or not set(body) & keys:
        return None
    found = ", ".join(sorted(set(body) & keys))
    msg = (f"found {found}: /predict takes one record {{column: value}} or {{\"records\": [...]}}; MLflow's scoring "
           f"formats ({', '.join(FORMATS)}, CSV, Parquet) go to POST /invocations, Open Inference Protocol v2 "
           f"requests to POST /v2/models/{name}/infer")  # fmt: skip
    return {"loc": ["body"], "msg": msg, "type": "other_protocol"}


# ------------------------------------------------------------------------------------------------------- shared
def validated(record_list, rows: list[dict], loc: list) -> list[dict]:
    """``rows`` validated by the signature's ``Record`` model (the contract of ``/predict``), as plain dicts.

    ``record_list`` is a pydantic ``TypeAdapter(list[Record])``. The first problem becomes a :class:`Refusal` whose
    ``loc`` names the row and the field, whatever the protocol.
    """
    from pydantic import ValidationError

    if not rows:
        raise bad("no rows: send at least one", loc)
    if len(rows) > MAX_BATCH:
        raise bad(f"{len(rows)} rows: at most {MAX_BATCH} per request", loc, status=413, kind="too_many_rows")
    try:
        records = record_list.validate_python(rows)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        first = errors[0]
        raise bad(first["msg"], [*loc, *first["loc"]], kind=first["type"]) from None
    return [r.model_dump() for r in records]


#: Paths whose metrics are labelled by their template (a model name in the path must not make new series).
_TEMPLATES = (
    (re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/infer$"), "/v2/models/{name}/infer"),
    (re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?/ready$"), "/v2/models/{name}/ready"),
    (re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?$"), "/v2/models/{name}"),
)
PATHS = {"/invocations", "/ping", "/version", "/v2", "/v2/health/live", "/v2/health/ready"}


def metric_path(path: str) -> str:
    """The label of ``path`` in the service's HTTP metrics: itself, its template, or ``other``."""
    if path in PATHS:
        return path
    return next((label for pattern, label in _TEMPLATES if pattern.match(path)), "other")


# ----------------------------------------------------------------------------------------- the OpenAPI document
def inline(schema: dict) -> dict:
    """A pydantic JSON schema with its ``$defs`` substituted in place (for a request body in ``openapi_extra``)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node and node["$ref"].startswith("#/$defs/"):
                return walk(defs[node["$ref"].removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


@functools.cache
def models() -> dict[str, Any]:
    """The pydantic models of every body the service answers (and of the OIP request), for the OpenAPI document."""
    from typing import Literal

    from pydantic import BaseModel, ConfigDict, Field

    class Problem(BaseModel):
        loc: list[str | int] = Field(description="where: body, the format or field, the row, the column")
        msg: str
        type: str

    class Refused(BaseModel):
        detail: list[Problem]

    class Predicted(BaseModel):
        model: str
        version: str | None
        variant: str = Field(description="champion or challenger: who answered (also in the X-Variant header)")
        request_id: str = Field(description="also in the X-Request-ID header, and in the prediction log")
        predictions: list[float] = Field(description="one per row, in the order sent")

    class ScoringAnswer(BaseModel):
        predictions: list[float]

    class ScoringError(BaseModel):
        error_code: str = Field(description="BAD_REQUEST, as MLflow's scoring server says it")
        message: str
        detail: list[Problem]

    class TensorMetadata(BaseModel):
        name: str
        datatype: str
        shape: list[int]

    class ModelMetadata(BaseModel):
        name: str
        versions: list[str]
        platform: str
        inputs: list[TensorMetadata]
        outputs: list[TensorMetadata]

    class RequestInput(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str
        shape: list[int]
        datatype: Literal[tuple(DATATYPES)]  # type: ignore[valid-type]
        data: list[Any] = Field(description="row-major, flat or nested")
        parameters: dict[str, Any] | None = None

    class RequestOutput(BaseModel):
        name: Literal[OUTPUT]  # type: ignore[valid-type]
        parameters: dict[str, Any] | None = None

    class InferenceRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        id: str | None = None
        parameters: dict[str, Any] | None = None
        inputs: list[RequestInput] = Field(min_length=1)
        outputs: list[RequestOutput] | None = None

    class ResponseOutput(BaseModel):
        name: str
        datatype: str
        shape: list[int]
        data: list[float]

    class InferenceResponse(BaseModel):
        model_name: str
        model_version: str | None
        id: str | None = None
        outputs: list[ResponseOutput]

    class InferenceError(BaseModel):
        error: str
        detail: list[Problem] | None = None

    class Live(BaseModel):
        live: bool

    class Ready(BaseModel):
        ready: bool

    class ModelReady(BaseModel):
        name: str
        ready: bool

    class ServerMetadata(BaseModel):
        name: str
        version: str
        extensions: list[str]

    class Health(BaseModel):
        status: str
        model: str
        version: str | None
        alias: str | None
        uri: str
        mode: str = Field(description="single, canary or shadow")

    class VariantInfo(BaseModel):
        model: str
        version: str | None
        alias: str | None
        uri: str

    class RoutingState(BaseModel):
        mode: str
        weight: float = Field(description="the canary's share of request keys")
        variants: dict[str, VariantInfo | None] = Field(description="champion and challenger (null when none)")

    class Reloaded(RoutingState):
        changed: bool
        before: dict[str, str | None] = Field(description="each variant's version before the reload")

    return {m.__name__: m for m in (Problem, Refused, Predicted, ScoringAnswer, ScoringError, ModelMetadata,
                                    InferenceRequest, InferenceResponse, InferenceError, Live, Ready, ModelReady,
                                    ServerMetadata, Health, RoutingState, Reloaded)}  # fmt: skip


def scoring_request_schema() -> dict:
    """The JSON body of ``POST /invocations`` (one of the four formats), as JSON Schema."""
    record = {"$ref": "#/components/schemas/Record"}
    rows = {"type": "array", "items": record, "minItems": 1}
    columns = {"type": "object", "additionalProperties": {"type": "array"}}
    names, table = {"type": "array", "items": {"type": "string"}}, {"type": "array", "items": {"type": "array"}}
    split = {"type": "object", "required": ["columns", "data"], "additionalProperties": False,
             "properties": {"columns": names, "data": table, "index": {"type": "array"}}}  # fmt: skip
    formats = {"dataframe_split": split, "dataframe_records": rows, "instances": {"anyOf": [rows, columns]},
               "inputs": {"anyOf": [rows, columns, record]}}  # fmt: skip
    return {
        "oneOf": [
            {"type": "object", "required": [key], "additionalProperties": False,
             "properties": {key: schema, "params": {"type": "object", "maxProperties": 0}}}
            for key, schema in formats.items()
        ]
    }  # fmt: skip
