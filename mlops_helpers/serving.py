"""The course's prediction service: FastAPI in front of a registered model (introduced in notebook 04; variants: 09).

Command line (notebooks start it through :func:`mlops_helpers.processes.start`)::

    python -m mlops_helpers.serving --model models:/citybikes-demand@champion --port 8080 [--host 127.0.0.1] [--log F]

Endpoints:

- ``GET /health``: the model's name, version and alias (an alias URI is resolved to its version at start-up).
- ``POST /predict``: one record ``{"hr": 8.0, ...}`` or a batch ``{"records": [{...}, ...]}``; answers
  ``{"model", "version", "request_id", "predictions": [...]}`` and the header ``X-Request-ID``.
- ``GET /metrics``: Prometheus text format: requests by path and status, latency and prediction histograms, rows
  predicted, and ``model_info`` carrying the version as labels.
- ``GET /routing``, ``PUT /routing`` and ``POST /reload`` (notebook 09): with ``--challenger`` the service holds two
  variants, routes by ``--mode`` (``canary``: a sticky share ``--weight`` of request keys to the challenger;
  ``shadow``: the challenger predicts on every request, only the champion answers), changes mode and weight while it
  runs, and re-resolves alias URIs after an alias moved.
- ``GET /openapi.json`` and ``GET /docs``: the API description and a small page that renders it without network
  (FastAPI's default docs load Swagger UI from a CDN).

The contract is the model's signature. Requests are validated by pydantic models generated from it; anything the
client sends that breaks it gets a 4xx whose ``detail`` names the field (``loc``) and the problem (``msg``), never a
500, and the service keeps serving. Decisions, so that no input can crash it:

- numbers must be finite (``NaN``/``Infinity``, which Python's JSON parser accepts, are refused) and of the declared
  type: strings are not coerced to numbers (strict mode), integers are accepted for float columns;
- unknown fields are refused (a misspelt column must not be silently ignored); a batch holds 1 to
  :data:`MAX_BATCH` records; a body that is not a JSON object (a bare list, a string) is refused;
- a finite input the model cannot compute with (a magnitude that overflows its float32 trees, say) and a
  non-finite prediction are refused with 422 rather than answered with garbage.

Every predicted row is appended to a JSON Lines prediction log (default ``<workspace>/predictions/<model>.jsonl``):
request id, UTC time, model name and version, features, prediction. Each request is one ``write`` on a file opened
with ``O_APPEND``, so a killed service loses at most the request in flight; :func:`read_log` skips a torn last line.
Notebooks 06 and 07 read it.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import uuid
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    from fastapi import FastAPI
    from prometheus_client import CollectorRegistry

#: The largest batch one request may carry.
MAX_BATCH = 10_000
#: Latency buckets (seconds): a single row takes a few milliseconds.
LATENCY_BUCKETS = (0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
#: Prediction buckets for CityBikes' hourly rentals (0 to about 1,000).
PREDICTION_BUCKETS = (0, 10, 25, 50, 100, 150, 200, 300, 400, 500, 600, 800, 1000)
REQUEST_ID_HEADER = "X-Request-ID"


# -- the model and its contract ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelRef:
    """What a model URI points at: the registered name, version and alias (``None`` where they do not apply)."""

    uri: str
    name: str
    version: str | None
    alias: str | None


def resolve(model_uri: str) -> ModelRef:
    """Resolve ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` to the registered version (with MlflowClient).

    Other URIs (``runs:/...``, ``models:/m-<id>``, a path) keep their last part as the name and no version.
    """
    import mlflow

    if model_uri.startswith("models:/"):
        rest = model_uri[len("models:/") :].strip("/")
        client = mlflow.MlflowClient()
        if "@" in rest:
            name, alias = rest.split("@", 1)
            version = client.get_model_version_by_alias(name, alias)
            return ModelRef(model_uri, name, str(version.version), alias)
        name, _, version = rest.partition("/")
        if version.isdigit():
            return ModelRef(model_uri, name, version, None)
        if version == "latest":
            latest = max(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version))
            return ModelRef(model_uri, name, str(latest.version), None)
    return ModelRef(model_uri, model_uri.rstrip("/").rsplit("/", 1)[-1], None, None)


#: MLflow column type -> (pandas dtype, python type). ``None`` bounds mean "any finite value".
_TYPES = {
    "double": ("float64", float, None),
    "float": ("float32", float, None),
    "long": ("int64", int, (-(2**63), 2**63 - 1)),
    "integer": ("int32", int, (-(2**31), 2**31 - 1)),
    "boolean": ("bool", bool, None),
    "string": ("object", str, None),
}


@dataclass(frozen=True)
class Column:
    """One input column of the model's signature."""

    name: str
    mlflow_type: str
    required: bool = True

    @property
    def dtype(self) -> str:
        return _TYPES[self.mlflow_type][0]


def signature_columns(model) -> list[Column]:
    """The input columns of a pyfunc model's signature. Raises ``ValueError`` if it has none the service supports."""
    schema = model.metadata.get_input_schema()
    if schema is None or not schema.has_input_names():
        raise ValueError("the model has no column-based input signature: log it with `signature=` (notebook 01)")
    columns = []
    for spec in schema.inputs:
        kind = getattr(spec.type, "name", str(spec.type))
        if kind not in _TYPES:
            raise ValueError(f"input {spec.name!r} has type {kind!r}, which the service does not support")
        columns.append(Column(spec.name, kind, getattr(spec, "required", True)))
    return columns


_NUMERIC = {"double", "float", "long", "integer"}


def fast_predict(model, columns: list[Column]):
    """``(predict, order)``: the function that predicts for validated rows, and how to hand them over.

    The request has already been validated against the signature, which is what pyfunc's schema enforcement and
    scikit-learn's input checks would do again. So for a scikit-learn estimator fitted on exactly the signature's
    numeric columns, ``order`` is its ``feature_names_in_`` and ``predict`` takes a float array in that order: the
    same numbers, about a third of the time of ``model.predict(frame)`` for one row. Otherwise ``order`` is ``None``
    and ``predict`` takes a DataFrame (the estimator's own ``predict`` for scikit-learn, else ``model.predict``).
    """
    if getattr(model, "loader_module", None) != "mlflow.sklearn":
        return model.predict, None
    estimator = model.get_raw_model()
    names = list(getattr(estimator, "feature_names_in_", []))
    if sorted(names) == sorted(c.name for c in columns) and all(c.mlflow_type in _NUMERIC for c in columns):

        def predict_array(X):
            # The array has no column names: the order was checked above, so scikit-learn's reminder is noise.
            # (catch_warnings is process-wide: fine here, the service predicts on its event loop's thread only.)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
                return estimator.predict(X)

        return predict_array, names
    return estimator.predict, None


def request_models(columns: list[Column]):
    """The pydantic models of a request, generated from the signature: ``(Record, Batch, Body)``.

    ``Body`` is what ``POST /predict`` accepts: a ``Record`` or a ``Batch`` (chosen by the presence of ``records``).
    """
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, create_model

    fields: dict[str, Any] = {}
    for column in columns:
        _, python_type, bounds = _TYPES[column.mlflow_type]
        constraints: dict[str, Any] = {"strict": True}
        if python_type is float:
            constraints["allow_inf_nan"] = False
        if bounds:
            constraints["ge"], constraints["le"] = bounds
        annotated = Annotated[python_type, Field(**constraints)]
        fields[column.name] = (annotated, ...) if column.required else (annotated | None, None)
    example = {c.name: _example_value(c) for c in columns}
    record = create_model(
        "Record",
        __config__=ConfigDict(extra="forbid", json_schema_extra={"examples": [example]}),
        **fields,
    )

    class Batch(BaseModel):
        model_config = ConfigDict(extra="forbid")
        records: Annotated[list[record], Field(min_length=1, max_length=MAX_BATCH)]  # type: ignore[valid-type]

    def which(value: Any) -> str:
        return "batch" if isinstance(value, dict) and "records" in value else "record"

    body = Annotated[
        Annotated[record, Tag("record")] | Annotated[Batch, Tag("batch")],  # type: ignore[valid-type]
        Discriminator(which),
    ]
    return record, Batch, body


def _example_value(column: Column) -> Any:
    return {"double": 1.0, "float": 1.0, "long": 1, "integer": 1, "boolean": True, "string": "a"}[column.mlflow_type]


# -- the prediction log -----------------------------------------------------------------------------------------------


class PredictionLog:
    """An append-only JSON Lines file: one line per predicted row, one ``write`` per request.

    The file is opened with ``O_APPEND``: each request's lines reach the operating system in a single call before the
    answer is sent, so a killed service loses at most the request in flight. If the file ends in a torn line (a
    writer killed mid-write), a newline is added first so that the torn line stays alone and readers can skip it.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self._lock = threading.Lock()
        if self.path.stat().st_size and self.path.read_bytes()[-1:] != b"\n":
            self._write(b"\n")

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def append(self, rows: list[dict]) -> None:
        """Append ``rows`` (JSON-serialisable dicts), one line each, in one write."""
        data = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode()
        with self._lock:
            self._write(data)

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1


def read_log(path: str | Path) -> list[dict]:
    """The rows of a prediction log, oldest first. Lines that are not complete JSON (a torn last line) are skipped."""
    rows = []
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return rows
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def log_frame(path: str | Path) -> pd.DataFrame:
    """A prediction log as a DataFrame: one column per feature, plus request id, time, model, version, prediction."""
    import pandas as pd

    rows = read_log(path)
    if not rows:
        return pd.DataFrame(columns=["request_id", "time", "model", "version", "prediction"])
    meta = pd.DataFrame([{k: v for k, v in r.items() if k != "features"} for r in rows])
    features = pd.DataFrame([r.get("features", {}) for r in rows])
    frame = pd.concat([meta, features], axis=1)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    return frame


def default_log_path(model_name: str) -> Path:
    """``<workspace>/predictions/<model name>.jsonl``."""
    from mlops_helpers.workspace import default_root

    return default_root() / "predictions" / f"{model_name}.jsonl"


# -- variants and routing (notebook 09) -------------------------------------------------------------------------------

#: Routing modes. ``single``: the champion answers everything. ``canary``: a sticky share ``weight`` of request keys
#: goes to the challenger, which answers them. ``shadow``: the champion answers everything and the challenger predicts
#: on every request too; its predictions are logged (``served: false``) and counted, never returned.
MODES = ("single", "canary", "shadow")
KEY_HEADER = "X-Request-Key"
VARIANT_HEADER = "X-Variant"


def bucket(key: str) -> float:
    """A request key's place in [0, 1): the first 8 bytes of its SHA-256. The same key gets the same bucket in every
    process and on every machine (Python's ``hash`` is salted per process, so it would not be sticky)."""
    import hashlib

    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def routing_problem(mode: Any, weight: Any) -> tuple[str, str] | None:
    """``(field, message)`` when ``mode`` or ``weight`` cannot be used for routing, else None."""
    if mode not in MODES:
        return "mode", f"mode must be one of {', '.join(MODES)}, not {mode!r}"
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
        return "weight", f"weight must be between 0 and 1, not {weight!r}"
    return None


def route(key: str, mode: str, weight: float) -> str:
    """``"challenger"`` or ``"champion"``: who answers a request with ``key``.

    Only ``canary`` sends anything to the challenger: keys whose :func:`bucket` is below ``weight``. Routing is sticky
    (a key always lands on the same side for a given weight) and monotone (raising the weight only moves keys from
    the champion to the challenger, so nobody flips back and forth while a canary is ramped up).
    """
    problem = routing_problem(mode, weight)
    if problem:
        raise ValueError(problem[1])
    return "challenger" if mode == "canary" and bucket(key) < weight else "champion"


@dataclass
class Variant:
    """A model the service answers with: its role (``champion``/``challenger``), registry reference, predictor."""

    role: str
    ref: ModelRef
    columns: list[Column]
    predict_rows: Any
    order: list[str] | None

    @classmethod
    def load(cls, role: str, model_uri: str, model=None) -> Variant:
        import mlflow

        ref = resolve(model_uri)
        model = model or mlflow.pyfunc.load_model(model_uri)
        columns = signature_columns(model)
        predict_rows, order = fast_predict(model, columns)
        return cls(role, ref, columns, predict_rows, order)

    def describe(self) -> dict:
        return {"model": self.ref.name, "version": self.ref.version, "alias": self.ref.alias, "uri": self.ref.uri}


class _Routing:
    """The variants, mode and weight requests read. :meth:`update` replaces the whole mapping in one assignment, so
    a request that took :attr:`now` sees one consistent routing while ``/reload`` (on a worker thread) changes it."""

    def __init__(self, **values: Any) -> None:
        self.now: dict[str, Any] = values

    def update(self, **changes: Any) -> None:
        self.now = {**self.now, **changes}

    def __getitem__(self, key: str) -> Any:
        return self.now[key]


def _same_contract(champion: Variant, challenger: Variant) -> None:
    ours = [(c.name, c.mlflow_type) for c in champion.columns]
    theirs = [(c.name, c.mlflow_type) for c in challenger.columns]
    if sorted(ours) != sorted(theirs):
        raise ValueError(
            f"the challenger ({challenger.ref.uri}) has another input signature than the champion: "
            f"{sorted(set(theirs) ^ set(ours))} differ; both variants must accept the same requests"
        )


# -- the application --------------------------------------------------------------------------------------------------


def create_app(
    model_uri: str,
    *,
    challenger_uri: str | None = None,
    mode: str | None = None,
    weight: float = 0.1,
    log_path: str | Path | None = None,
    registry: CollectorRegistry | None = None,
    model=None,
    challenger_model=None,
) -> FastAPI:
    """The service for ``model_uri`` as a FastAPI app (tests use it with ``TestClient``; :func:`main` serves it).

    With ``challenger_uri`` it serves two variants (notebook 09): ``mode`` is ``canary`` (the default then) or
    ``shadow`` or ``single``, and ``weight`` the canary's share of request keys. ``GET/PUT /routing`` reads and changes
    mode and weight while it runs; ``POST /reload`` resolves the URIs again (after an alias moved) without a restart.
    ``model``/``challenger_model`` may be given already loaded; ``registry`` is the Prometheus registry to expose (a
    new one by default, so several apps can live in one process).
    """
    import mlflow
    import numpy as np
    import pandas as pd
    from fastapi import Body as BodyParam
    from fastapi import FastAPI, Request, Response
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        disable_created_metrics,
        generate_latest,
    )

    champion = Variant.load("champion", model_uri, model)
    challenger = Variant.load("challenger", challenger_uri, challenger_model) if challenger_uri else None
    if challenger:
        _same_contract(champion, challenger)
    mode = mode or ("canary" if challenger else "single")
    problem = routing_problem(mode, weight)
    if problem:
        raise ValueError(problem[1])
    if mode != "single" and challenger is None:
        raise ValueError(f"mode {mode!r} needs a challenger: pass challenger_uri (--challenger)")
    ref = champion.ref
    columns = champion.columns
    names = [c.name for c in columns]
    dtypes = {c.name: c.dtype for c in columns}
    _, _, Body = request_models(columns)
    log = PredictionLog(log_path or default_log_path(ref.name))
    state = _Routing(champion=champion, challenger=challenger, mode=mode, weight=float(weight))

    disable_created_metrics()  # no `*_created` samples: they double the exposition and say nothing here
    registry = registry or CollectorRegistry()
    requests_total = Counter(
        "http_requests", "HTTP requests answered, by path and status code", ["path", "status"], registry=registry
    )
    latency = Histogram(
        "http_request_duration_seconds", "Time to answer, by path", ["path"], buckets=LATENCY_BUCKETS, registry=registry
    )
    predictions = Histogram(
        "prediction_value",
        "Predicted values returned, one per row, by variant",
        ["variant", "version"],
        buckets=PREDICTION_BUCKETS,
        registry=registry,
    )
    rows_total = Counter(
        "predicted_rows", "Rows predicted and returned, by variant", ["variant", "version"], registry=registry
    )
    shadow_total = Counter(
        "shadow_predicted_rows",
        "Rows the challenger predicted in shadow mode (logged, not returned)",
        ["version"],
        registry=registry,
    )
    predict_seconds = Histogram(
        "model_predict_seconds",
        "Time in the model's predict, by variant",
        ["variant"],
        buckets=LATENCY_BUCKETS,
        registry=registry,
    )
    model_info = Gauge(
        "model_info",
        "The models being served (1 per variant)",
        ["variant", "name", "version", "alias", "uri"],
        registry=registry,
    )
    canary_weight = Gauge(
        "routing_canary_weight", "Share of request keys routed to the challenger in canary mode", registry=registry
    )
    routing_mode = Gauge("routing_mode", "1 for the current routing mode", ["mode"], registry=registry)

    def publish() -> None:
        """Expose the current variants and routing as gauges (after start, /routing and /reload)."""
        model_info.clear()
        for variant in (state["champion"], state["challenger"]):
            if variant is not None:
                info = variant.ref
                model_info.labels(variant.role, info.name, info.version or "", info.alias or "", info.uri).set(1)
        canary_weight.set(state["weight"])
        for name in MODES:
            routing_mode.labels(name).set(1 if name == state["mode"] else 0)

    publish()

    app = FastAPI(
        title="CityBikes prediction service",
        version="1.1",
        summary=f"Serves {ref.uri} (version {ref.version}). Notebook 04 of the MLOps course; variants: notebook 09.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.ref, app.state.log, app.state.registry, app.state.routing = ref, log, registry, state
    known_paths = {"/health", "/predict", "/metrics", "/openapi.json", "/docs", "/routing", "/reload"}

    class Measure:
        """Pure ASGI middleware: counts every answer by path and status, and times it."""

        def __init__(self, inner) -> None:
            self.inner = inner

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] != "http":
                await self.inner(scope, receive, send)
                return
            path = scope["path"] if scope["path"] in known_paths else "other"
            started, status = time.perf_counter(), [500]

            async def record(message) -> None:
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await self.inner(scope, receive, record)
            finally:
                latency.labels(path).observe(time.perf_counter() - started)
                requests_total.labels(path, str(status[0])).inc()

    app.add_middleware(Measure)

    def refuse(errors: list[dict], status: int = 422) -> JSONResponse:
        # Only loc, msg and type: FastAPI's default handler also echoes the input, which may hold NaN (not valid JSON).
        detail = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "value_error")}
            for e in errors
        ]
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return refuse(list(exc.errors()))

    @app.get("/health")
    def health() -> dict:
        """The model being served (the champion): name, version, alias and URI; and the routing mode."""
        current = state["champion"].ref
        return {
            "status": "ok",
            "model": current.name,
            "version": current.version,
            "alias": current.alias,
            "uri": current.uri,
            "mode": state["mode"],
        }

    def run_model(variant: Variant, rows: list[dict]):
        """The variant's predictions for validated rows, or a refusal (a 422 response)."""
        started = time.perf_counter()
        try:
            if variant.order:
                inputs = np.array([[row[n] for n in variant.order] for row in rows], dtype="float64")
            else:
                inputs = pd.DataFrame({n: np.array([row[n] for row in rows], dtype=dtypes[n]) for n in names})
            with np.errstate(all="ignore"):
                values = np.asarray(variant.predict_rows(inputs), dtype="float64").reshape(-1)
        except (ValueError, TypeError, ArithmeticError, mlflow.exceptions.MlflowException) as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return refuse([{"loc": ["body"], "msg": f"the model cannot predict for this input: {message}"}])
        finally:
            predict_seconds.labels(variant.role).observe(time.perf_counter() - started)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            where = ["body", "batch", "records", int(bad[0])] if len(rows) > 1 else ["body", "record"]
            problem = "the prediction is not finite: input values outside the model's range"
            return refuse([{"loc": where, "msg": problem}])
        return [float(v) for v in values]

    def log_rows(variant: Variant, rows, answer, request_id, key, now, served: bool) -> list[dict]:
        return [
            {
                "request_id": request_id,
                "row": i,
                "time": now,
                "model": variant.ref.name,
                "version": variant.ref.version,
                "variant": variant.role,
                "served": served,
                "key": key,
                "features": row,
                "prediction": value,
            }
            for i, (row, value) in enumerate(zip(rows, answer, strict=True))
        ]

    async def predict(body, request: Request):
        """Predict for one record or a batch ``{"records": [...]}``; every row goes to the prediction log.

        The optional header ``X-Request-Key`` (a user, a station, the hour asked about) keeps routing sticky in canary
        mode; without it each request is routed on its own id. The answer names the variant in ``variant`` and in the
        header ``X-Variant``.
        """
        records = body.records if hasattr(body, "records") else [body]
        rows = [record.model_dump() for record in records]
        request_id = uuid.uuid4().hex
        key = request.headers.get(KEY_HEADER)
        current = state.now  # this request's view, whatever /routing or /reload do meanwhile
        role = route(key if key is not None else request_id, current["mode"], current["weight"])
        answering = current[role] or current["champion"]
        answer = run_model(answering, rows)
        if isinstance(answer, JSONResponse):
            return answer
        now = datetime.now(UTC).isoformat(timespec="microseconds")
        entries = log_rows(answering, rows, answer, request_id, key, now, served=True)
        shadow = current["challenger"] if current["mode"] == "shadow" else None
        if shadow is not None:
            # Inline, after the answer is computed: it costs the challenger's predict time (model_predict_seconds
            # shows it). A refusal by the shadow never reaches the client; it is simply not logged.
            shadow_answer = run_model(shadow, rows)
            if not isinstance(shadow_answer, JSONResponse):
                entries += log_rows(shadow, rows, shadow_answer, request_id, key, now, served=False)
                shadow_total.labels(shadow.ref.version or "").inc(len(shadow_answer))
        log.append(entries)
        version_label = answering.ref.version or ""
        rows_total.labels(answering.role, version_label).inc(len(answer))
        for value in answer:
            predictions.labels(answering.role, version_label).observe(value)
        # A response object, not a dict: FastAPI would encode the dict field by field, which costs more than the model.
        content = {
            "model": answering.ref.name,
            "version": answering.ref.version,
            "variant": answering.role,
            "request_id": request_id,
            "predictions": answer,
        }
        return JSONResponse(content, headers={REQUEST_ID_HEADER: request_id, VARIANT_HEADER: answering.role})

    # Set here, not in the signature: with postponed annotations FastAPI could not resolve the generated `Body`.
    predict.__annotations__ = {"body": Body, "request": Request, "return": JSONResponse}
    example = {
        "model": ref.name,
        "version": ref.version,
        "variant": "champion",
        "request_id": "0" * 32,
        "predictions": [42.0],
    }
    app.post(
        "/predict",
        response_class=JSONResponse,
        responses={
            200: {"description": "One prediction per row", "content": {"application/json": {"example": example}}},
            422: {"description": "The request breaks the model's signature: `detail` names field and problem"},
        },
    )(predict)

    def routing_state() -> dict:
        return {
            "mode": state["mode"],
            "weight": state["weight"],
            "variants": {
                role: (state[role].describe() if state[role] is not None else None)
                for role in ("champion", "challenger")
            },
        }

    @app.get("/routing")
    def get_routing() -> dict:
        """The routing mode, the canary weight and the two variants."""
        return routing_state()

    async def put_routing(change: dict = BodyParam(..., examples=[{"mode": "canary", "weight": 0.1}])):  # noqa: B008
        """Change ``mode`` and/or ``weight`` without a restart; 422 names what is wrong, 409: no challenger."""
        unknown = set(change) - {"mode", "weight"}
        if unknown:
            return refuse([{"loc": ["body", sorted(unknown)[0]], "msg": "unknown field: send mode and/or weight"}])
        mode_new, weight_new = change.get("mode", state["mode"]), change.get("weight", state["weight"])
        problem = routing_problem(mode_new, weight_new)
        if problem:
            return refuse([{"loc": ["body", problem[0]], "msg": problem[1]}])
        if mode_new != "single" and state["challenger"] is None:
            msg = f"mode {mode_new!r} needs a challenger and none is loaded: register one and POST /reload"
            return refuse([{"loc": ["body", "mode"], "msg": msg, "type": "conflict"}], status=409)
        state.update(mode=mode_new, weight=float(weight_new))
        publish()
        return JSONResponse(routing_state())

    app.put("/routing")(put_routing)

    @app.post("/reload")
    def reload():
        """Resolve the champion and challenger URIs again (an alias moved) and load what changed, without a restart.

        A challenger alias that no longer exists (promoted, or rolled back) leaves the champion alone in ``single``
        mode. A champion that cannot be loaded is an error (503) and the service keeps serving what it had.
        """
        fresh = {}
        try:
            for role, uri in (("champion", model_uri), ("challenger", challenger_uri)):
                if uri is None:
                    fresh[role] = None
                    continue
                try:
                    new_ref = resolve(uri)
                except mlflow.exceptions.MlflowException:
                    if role == "challenger":
                        fresh[role] = None
                        continue
                    raise
                old = state[role]
                same = old is not None and old.ref.version == new_ref.version and new_ref.version is not None
                fresh[role] = old if same else Variant.load(role, uri)
            if fresh["challenger"] is not None:
                _same_contract(fresh["champion"], fresh["challenger"])
        except (mlflow.exceptions.MlflowException, ValueError, OSError) as exc:
            message = str(exc).strip().splitlines()[0]
            return refuse([{"loc": ["reload"], "msg": f"reload failed, still serving as before: {message}"}], 503)
        before = {role: (state[role].ref.version if state[role] else None) for role in ("champion", "challenger")}
        new_mode = state["mode"] if fresh["challenger"] is not None else "single"
        state.update(champion=fresh["champion"], challenger=fresh["challenger"], mode=new_mode)
        app.state.ref = fresh["champion"].ref
        publish()
        after = {role: (state[role].ref.version if state[role] else None) for role in ("champion", "challenger")}
        return JSONResponse({**routing_state(), "changed": before != after, "before": before})

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(OFFLINE_DOCS.replace("{title}", app.title))

    return app


#: A self-contained page that renders /openapi.json (no CDN, no network): paths, parameters and schemas.
OFFLINE_DOCS = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:60em}pre{background:#f4f4f4;padding:.6em;
overflow:auto}h2{border-top:1px solid #ccc;padding-top:.6em}code{background:#f4f4f4}</style></head>
<body><h1>{title}</h1><p>Rendered offline from <a href="openapi.json">openapi.json</a>.</p><div id="api"></div>
<script>
fetch("openapi.json").then(r => r.json()).then(spec => {
  const out = document.getElementById("api");
  const esc = s => String(s).replace(/[&<>]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;"}[c]));
  let html = "<p>" + esc(spec.info.summary || "") + "</p>";
  for (const [path, ops] of Object.entries(spec.paths)) for (const [method, op] of Object.entries(ops)) {
    html += "<h2><code>" + method.toUpperCase() + " " + esc(path) + "</code></h2>";
    html += "<p>" + esc(op.description || op.summary || "") + "</p>";
    const body = op.requestBody ? JSON.stringify(op.requestBody.content, null, 2) : "";
    if (body) html += "<h3>Request body</h3><pre>" + esc(body) + "</pre>";
    html += "<h3>Responses</h3><pre>" + esc(JSON.stringify(op.responses, null, 2)) + "</pre>";
  }
  html += "<h2>Schemas</h2><pre>" + esc(JSON.stringify((spec.components || {}).schemas || {}, null, 2)) + "</pre>";
  out.innerHTML = html;
});
</script></body></html>
"""


# -- the command line -------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """``python -m mlops_helpers.serving --model URI --port P [--host H] [--log FILE]``: serve until stopped."""
    parser = argparse.ArgumentParser(prog="python -m mlops_helpers.serving", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="model URI, e.g. models:/citybikes-demand@champion")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log", default=None, help="prediction log (default: <workspace>/predictions/<model>.jsonl)")
    parser.add_argument("--challenger", default=None, help="a second variant, e.g. models:/citybikes-demand@challenger")
    parser.add_argument("--mode", choices=MODES, default=None, help="routing (default: canary with a challenger)")
    parser.add_argument("--weight", type=float, default=0.1, help="canary share of request keys (default 0.1)")
    args = parser.parse_args(argv)

    import uvicorn

    from mlops_helpers import workspace

    if "MLFLOW_TRACKING_URI" in os.environ:  # e.g. a tracking server (notebook 02): use it as it is
        workspace.quiet()
    else:
        workspace.setup()
    app = create_app(args.model, challenger_uri=args.challenger, mode=args.mode, weight=args.weight, log_path=args.log)
    ref, routing = app.state.ref, app.state.routing
    also = ""
    if routing["challenger"] is not None:
        also = (
            f" and challenger version {routing['challenger'].ref.version} ({routing['mode']}, {routing['weight']:.0%})"
        )
    print(f"serving {ref.name} version {ref.version}{also} on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()


__all__ = [
    "KEY_HEADER",
    "MAX_BATCH",
    "MODES",
    "VARIANT_HEADER",
    "Column",
    "ModelRef",
    "PredictionLog",
    "Variant",
    "bucket",
    "create_app",
    "default_log_path",
    "fast_predict",
    "log_frame",
    "main",
    "read_log",
    "request_models",
    "resolve",
    "route",
    "signature_columns",
]
