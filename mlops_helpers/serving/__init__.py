"""The course's prediction service: FastAPI in front of a registered model (notebook 04; two variants: notebook 09).

Command line (notebooks start it through :func:`mlops_helpers.processes.start`)::

    python -m mlops_helpers.serving --model models:/citybikes-demand@champion --port 8080 [--host 127.0.0.1] [--log F]
        [--challenger models:/citybikes-demand@challenger --mode canary|shadow --weight 0.1]

One job per module:

| module | its job |
|---|---|
| ``contract`` | the request contract generated from the model's signature (pydantic), and the fast predict path |
| ``routing`` | who answers a request: the modes, the sticky hash of a request key, the current routing |
| ``predlog`` | the prediction log (one JSON line per predicted row) and reading it back as a table |
| ``metrics`` | the Prometheus metrics the service exposes |
| ``service`` | :class:`~mlops_helpers.serving.service.PredictionService`: load, predict, route, reload; no HTTP |
| ``protocols`` | MLflow's scoring protocol and the Open Inference Protocol v2: their bodies to rows and back |
| ``app`` | the FastAPI app: routes that call the service, nothing else |

Endpoints: ``GET /health``; ``POST /predict`` (one record ``{"hr": 8.0, ...}`` or ``{"records": [...]}``);
``GET /metrics``; ``GET/PUT /routing`` and ``POST /reload`` (variants); ``GET /openapi.json`` and ``GET /docs``
(rendered without a CDN). Beside ``/predict``, the protocols other clients speak: ``POST /invocations``,
``GET /ping`` and ``GET /version`` (MLflow's scoring protocol, as ``mlflow models serve``), and ``/v2/health/*``,
``/v2/models/{name}`` and ``POST /v2/models/{name}/infer`` (the Open Inference Protocol v2). Anything a client sends
that breaks the model's signature gets a 4xx whose ``detail`` names the field (``loc``) and the problem (``msg``),
never a 500.

Importing this package is cheap: FastAPI, pydantic, MLflow and NumPy are imported where they are used.
"""
