"""The service's command line: ``python -m mlops_helpers.serving --model URI --port P`` (see the package docstring)."""

from __future__ import annotations

import argparse

from mlops_helpers.serving.routing import MODES


def main(argv: list[str] | None = None) -> None:
    """Serve the model until stopped (SIGTERM or Ctrl-C), on loopback unless ``--host`` says otherwise."""
    parser = argparse.ArgumentParser(prog="python -m mlops_helpers.serving", description=main.__doc__)
    parser.add_argument("--model", required=True, help="model URI, e.g. models:/citybikes-demand@champion")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log", default=None, help="prediction log (default: <workspace>/predictions/<model>.jsonl)")
    parser.add_argument("--challenger", default=None, help="a second variant, e.g. models:/citybikes-demand@challenger")
    parser.add_argument("--mode", choices=MODES, default=None, help="routing (default: canary with a challenger)")
    parser.add_argument("--weight", type=float, default=0.1, help="canary share of request keys (default 0.1)")
    parser.add_argument("--max-body-bytes", type=int, default=None, help="largest request body read (default 8 MiB)")
    args = parser.parse_args(argv)

    import uvicorn

    from mlops_helpers.serving.app import create_app
    from mlops_helpers.serving.service import PredictionService
    from mlops_helpers.workspace import connect

    connect()  # MLFLOW_TRACKING_URI when set (a tracking server, notebook 02), else the workspace
    service = PredictionService(
        args.model, challenger_uri=args.challenger, mode=args.mode, weight=args.weight, log_path=args.log
    )
    routing, ref = service.routing, service.ref
    also = ""
    if routing.challenger is not None:
        also = f" and challenger version {routing.challenger.ref.version} ({routing.mode}, {routing.weight:.0%})"
    print(f"serving {ref.name} version {ref.version}{also} on http://{args.host}:{args.port}", flush=True)
    app = create_app(service) if args.max_body_bytes is None else create_app(service, args.max_body_bytes)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
