"""The service's HTTP face: FastAPI routes that call a :class:`PredictionService`, and nothing else (notebook 04).

Tests use :func:`create_app` with FastAPI's ``TestClient``; ``python -m mlops_helpers.serving`` serves it with uvicorn.
What a request may be (its size, its media type) and where a body is parsed are in :mod:`.limits`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from mlops_helpers.serving import protocols
from mlops_helpers.serving.contract import request_models
from mlops_helpers.serving.limits import MAX_BODY_BYTES, RequestLimits, Worker, off_loop_route
from mlops_helpers.serving.routing import KEY_HEADER, VARIANT_HEADER
from mlops_helpers.serving.service import PredictionService, Refusal

if TYPE_CHECKING:  # pragma: no cover
    from fastapi import FastAPI

REQUEST_ID_HEADER = "X-Request-ID"
KNOWN_PATHS = {"/health", "/predict", "/metrics", "/openapi.json", "/docs", "/routing", "/reload"}


class Measure:
    """Pure ASGI middleware: counts every answer by path and status, and times it."""

    def __init__(self, inner, metrics) -> None:
        self.inner, self.metrics = inner, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        path = scope["path"] if scope["path"] in KNOWN_PATHS else protocols.metric_path(scope["path"])
        started, status = time.perf_counter(), [500]

        async def record(message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.inner(scope, receive, record)
        finally:
            self.metrics.request(path, status[0], time.perf_counter() - started)


def refusal_response(errors: list[dict], status: int = 422):
    """A JSON refusal with only ``loc``, ``msg`` and ``type`` per error (FastAPI's default handler also echoes the
    input, which may hold NaN: not valid JSON)."""
    from fastapi.responses import JSONResponse

    detail = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "value_error")}
        for e in errors
    ]
    return JSONResponse({"detail": detail}, status_code=status)


def create_app(service: PredictionService, max_body: int = MAX_BODY_BYTES) -> FastAPI:
    """The FastAPI app for ``service``: ``/health``, ``/predict``, ``/metrics``, ``/routing``, ``/reload``, docs.

    Every route refuses a body over ``max_body`` bytes (413) before reading it; ``/predict`` is parsed and answered
    on a worker thread, so a big batch does not hold up ``/health`` (see :mod:`.limits`)."""
    from fastapi import Body as BodyParam
    from fastapi import FastAPI, Request, Response
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse

    from mlops_helpers.serving.metrics import CONTENT_TYPE

    ref = service.ref
    Record, _, Body = request_models(service.columns)
    bodies = protocols.models()
    app = FastAPI(
        title="CityBikes prediction service",
        version="1.1",
        summary=f"Serves {ref.uri} (version {ref.version}). Notebook 04 of the MLOps course; variants: notebook 09.",
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = service
    app.add_middleware(RequestLimits, max_body=max_body)
    app.add_middleware(Measure, metrics=service.metrics)  # outermost: 413 and 415 answers are counted too
    offloop = off_loop_route(Worker())

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        other = protocols.other_protocol(
            exc.body, ref.name, service.columns
        )  # a body meant for /invocations or /v2: say so
        return refusal_response([other] if other else list(exc.errors()))

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        return refusal_response(exc.errors, exc.status)

    @app.get("/health", response_model=bodies["Health"])
    def health() -> dict:
        """The model being served (the champion): name, version, alias and URI; and the routing mode."""
        return service.health()

    async def predict(body, request: Request):
        """Predict for one record or a batch ``{"records": [...]}``; every row goes to the prediction log.

        The optional header ``X-Request-Key`` (a user, a station, the hour asked about) keeps routing sticky in canary
        mode; without it each request is routed on its own id. The answer names the variant in ``variant`` and in the
        header ``X-Variant``.
        """
        records = body.records if hasattr(body, "records") else [body]
        answer = service.predict([record.model_dump() for record in records], request.headers.get(KEY_HEADER))
        # A response object, not a dict: FastAPI would encode the dict field by field, which costs more than the model.
        headers = {REQUEST_ID_HEADER: answer.request_id, VARIANT_HEADER: answer.variant}
        return JSONResponse(answer.to_dict(), headers=headers)

    # Set here, not in the signature: with postponed annotations FastAPI could not resolve the generated `Body`.
    predict.__annotations__ = {"body": Body, "request": Request, "return": JSONResponse}
    example = {"model": ref.name, "version": ref.version, "variant": "champion", "request_id": "0" * 32,
               "predictions": [42.0]}  # fmt: skip
    app.router.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        response_class=JSONResponse,
        route_class_override=offloop,
        responses={
            200: {
                "description": "One prediction per row",
                "model": bodies["Predicted"],
                "content": {"application/json": {"example": example}},
            },
            413: {
                "description": f"The body is over {max_body:,} bytes: refused before it is read",
                "model": bodies["Refused"],
            },
            415: {"description": "The body is not sent as `application/json`", "model": bodies["Refused"]},
            422: {
                "description": "The request breaks the model's signature: `detail` names field and problem",
                "model": bodies["Refused"],
            },
        },
    )

    @app.get("/routing", response_model=bodies["RoutingState"])
    def get_routing() -> dict:
        """The routing mode, the canary weight and the two variants."""
        return service.routing_state()

    @app.put("/routing", responses={200: {"model": bodies["RoutingState"]}, 409: {"model": bodies["Refused"]}})
    async def put_routing(change: dict = BodyParam(..., examples=[{"mode": "canary", "weight": 0.1}])):  # noqa: B008
        """Change ``mode`` and/or ``weight`` without a restart; 422 names what is wrong, 409: no challenger."""
        return JSONResponse(service.set_routing(change))

    @app.post("/reload", responses={200: {"model": bodies["Reloaded"]}, 503: {"model": bodies["Refused"]}})
    def reload():
        """Resolve the champion and challenger URIs again (an alias moved) and load what changed, without a restart.

        A challenger alias that no longer exists (promoted, or rolled back) leaves the champion alone in ``single``
        mode. A champion that cannot be loaded is an error (503) and the service keeps serving what it had.
        """
        return JSONResponse(service.reload())

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(OFFLINE_DOCS.replace("{title}", app.title))

    add_protocol_routes(app, service, Record, offloop)
    return app


def add_protocol_routes(app: FastAPI, service: PredictionService, record, offloop) -> None:
    """MLflow's scoring protocol and the Open Inference Protocol v2 (:mod:`~mlops_helpers.serving.protocols`): the
    same service, contract, log and metrics as ``/predict``, in the bodies other clients send. Their bodies are parsed
    and predicted on the same worker thread as ``/predict`` (``offloop``), so a big one does not hold up ``/health``."""
    from pydantic import TypeAdapter

    rows_of, bodies = TypeAdapter(list[record]), protocols.models()
    add_scoring_routes(app, service, rows_of, bodies, offloop)
    add_v2_routes(app, service, rows_of, bodies, offloop)


def _json(status: int, payload: dict, answer=None):
    """A protocol's answer; a prediction also names its request id and variant in headers, as ``/predict`` does."""
    from fastapi.responses import JSONResponse

    headers = {REQUEST_ID_HEADER: answer.request_id, VARIANT_HEADER: answer.variant} if answer else None
    return JSONResponse(payload, status_code=status, headers=headers)


def _errors(bodies: dict, model: str, *statuses: int) -> dict:
    return {status: {"model": bodies[model], "description": protocols.ERRORS[status]} for status in statuses}


def add_scoring_routes(app: FastAPI, service: PredictionService, rows_of, bodies: dict, offloop) -> None:
    """``POST /invocations``, ``GET /ping``, ``GET /version``: a drop-in for ``mlflow models serve``."""
    from fastapi import Request
    from fastapi.responses import PlainTextResponse
    from mlflow.version import VERSION

    scoring_body = {"required": True, "content": {
        protocols.JSON: {"schema": protocols.scoring_request_schema()},
        protocols.CSV: {"schema": {"type": "string", "description": "a header row, then one row per record"}},
        protocols.PARQUET: {"schema": {"type": "string", "format": "binary"}}}}  # fmt: skip
    responses = {200: {"model": bodies["ScoringAnswer"]}, **_errors(bodies, "ScoringError", 400, 413, 415)}

    async def invocations(request: Request):
        """MLflow's scoring protocol, as `mlflow models serve` answers it: JSON (`dataframe_split`,
        `dataframe_records`, `instances`, `inputs`), CSV or Parquet in; `{"predictions": [...]}` out."""
        body, headers = await request.body(), request.headers
        return _json(
            *protocols.invocations(service, rows_of, body, headers.get("content-type"), headers.get(KEY_HEADER))
        )

    invocations.__annotations__ = {"request": Request}  # resolvable: the module has postponed annotations
    app.router.add_api_route("/invocations", invocations, methods=["POST"], route_class_override=offloop,
                             openapi_extra={"requestBody": scoring_body}, responses=responses)  # fmt: skip

    text = {200: {"content": {"text/plain": {"schema": {"type": "string"}}}}}

    @app.get("/ping", response_class=PlainTextResponse, responses=text)
    def ping() -> str:
        """MLflow's health check: 200 while the model is loaded."""
        return "\n"

    @app.get("/version", response_class=PlainTextResponse, responses=text)
    def version() -> str:
        """The MLflow version serving the model, as `mlflow models serve` answers it."""
        return VERSION


def add_v2_routes(app: FastAPI, service: PredictionService, rows_of, bodies: dict, offloop) -> None:
    """The Open Inference Protocol v2: health, server and model metadata, readiness, inference."""
    from fastapi import Request

    @app.get("/v2", response_model=bodies["ServerMetadata"])
    def server_metadata() -> dict:
        """OIP v2 server metadata."""
        return {"name": app.title, "version": app.version, "extensions": []}

    @app.get("/v2/health/live", response_model=bodies["Live"])
    def live() -> dict:
        """OIP v2 liveness."""
        return {"live": True}

    @app.get("/v2/health/ready", response_model=bodies["Ready"])
    def ready() -> dict:
        """OIP v2 readiness: the model is loaded."""
        return {"ready": True}

    not_found = _errors(bodies, "InferenceError", 404)

    @app.get("/v2/models/{name}", responses={200: {"model": bodies["ModelMetadata"]}, **not_found})
    def model_metadata(name: str):
        """OIP v2 model metadata: one input per column of the signature, one output."""
        return _json(*protocols.model_metadata(service, name))

    @app.get("/v2/models/{name}/ready", responses={200: {"model": bodies["ModelReady"]}, **not_found})
    def model_ready(name: str):
        """OIP v2 model readiness."""
        return _json(*protocols.model_ready(service, name))

    infer_body = {"required": True, "content": {
        protocols.JSON: {"schema": protocols.inline(bodies["InferenceRequest"].model_json_schema())}}}  # fmt: skip
    responses = {200: {"model": bodies["InferenceResponse"]}, **_errors(bodies, "InferenceError", 400, 404, 413)}

    async def infer(name: str, request: Request):
        """OIP v2 inference: one tensor per column (shape [N] or [N, 1]) or one [N, columns] tensor in; the
        predictions as the FP64 output `predict` out."""
        return _json(*protocols.infer(service, rows_of, name, await request.body(), request.headers.get(KEY_HEADER)))

    infer.__annotations__ = {"name": str, "request": Request}
    app.router.add_api_route("/v2/models/{name}/infer", infer, methods=["POST"], route_class_override=offloop,
                             openapi_extra={"requestBody": infer_body}, responses=responses)  # fmt: skip


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
