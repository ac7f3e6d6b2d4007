"""The course's pipeline and release on a cluster, step by step (called by cluster/release.sh; see cluster/README.md).

    python cluster/release.py pipeline --kfp URL --tracking-uri URI --data-uri PATH   # prints the champion's version
    python cluster/release.py stage --version V --dest DIR           # the object store's folder for that version
    python cluster/release.py manifests --version V --out DIR        # the KServe InferenceService for it
    python cluster/release.py check --ingress URL --host HOST --version V   # its predictions are the registry's

MLflow is reached at ``MLFLOW_TRACKING_URI`` (a port-forward to the cluster's server) from here, and at
``--tracking-uri`` from the pipeline's pods. Written and checked offline (tests/test_cluster.py); it runs in
.github/workflows/cluster.yml on a kind cluster, not on the course's machines.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mlops_helpers import data, manifests, workspace
from mlops_helpers.names import CHAMPION, KFP_EXPERIMENT, MODEL_NAME

SERVICE_ACCOUNT = "models-reader"  # cluster/mlflow.yaml: its secret lets KServe read s3:// from MinIO
STORAGE_ROOT = "s3://mlops-course-models"


def pipeline(kfp_host: str, tracking_uri: str, data_uri: str, timeout: int) -> str:
    """Compile the training pipeline, run it on the cluster, wait, and return the champion's version."""
    import kfp

    from mlops_helpers import kfp_pipeline
    from mlops_helpers.registry import Registry

    with tempfile.TemporaryDirectory() as tmp:
        package = kfp_pipeline.compile_pipeline(Path(tmp) / "pipeline.yaml")
        client = kfp.Client(host=kfp_host)
        run = client.create_run_from_pipeline_package(
            str(package),
            arguments={"data_uri": data_uri, "tracking_uri": tracking_uri, "reason": "cluster track"},
            experiment_name=KFP_EXPERIMENT,
        )
    done = client.wait_for_run_completion(run.run_id, timeout=timeout)
    if str(done.state) != "SUCCEEDED":
        raise SystemExit(f"pipeline run {run.run_id} ended {done.state}")
    workspace.connect()  # MLFLOW_TRACKING_URI: the port-forward to the same server the pods wrote to
    version = Registry(MODEL_NAME).get(CHAMPION)
    if version is None:
        raise SystemExit("the pipeline succeeded but registered no champion (evaluation refused the model?)")
    return str(version.version)


def stage(version: str, dest: str) -> None:
    workspace.connect()
    print(manifests.stage_model(MODEL_NAME, version, dest))


def write_manifests(version: str, out: str) -> None:
    """The stable InferenceService for ``version`` (the first release has no challenger yet)."""
    from mlops_helpers.registry import Registry

    workspace.connect()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    model = Registry(MODEL_NAME).version(version)
    isvc = manifests.inference_service(MODEL_NAME, model, champion=version, storage_root=STORAGE_ROOT,
                                       service_account=SERVICE_ACCOUNT)  # fmt: skip
    (folder / "inferenceservice.yaml").write_text(manifests.to_yaml(isvc))
    print(folder / "inferenceservice.yaml")


def check(ingress: str, host: str, version: str, rows: int) -> None:
    """Send ``rows`` hours of March 2011 through the ingress (OIP v2, one tensor per column) and compare."""
    import mlflow
    import numpy as np
    import requests

    workspace.connect()
    X, _ = data.xy(data.window(data.load_bikes(), data.VALIDATION_START, data.TRAIN_WINDOW.end))
    X = X.head(rows)
    expected = mlflow.pyfunc.load_model(f"models:/{MODEL_NAME}/{version}").predict(X)
    inputs = [{"name": c, "shape": [len(X), 1], "datatype": "FP64", "data": X[c].tolist()} for c in X.columns]
    name = manifests.k8s_name(MODEL_NAME)
    response = requests.post(f"{ingress}/v2/models/{name}/infer", json={"inputs": inputs, "parameters":
                             {"content_type": "pd"}}, headers={"Host": host}, timeout=60)  # fmt: skip
    response.raise_for_status()
    got = np.asarray(response.json()["outputs"][0]["data"], dtype="float64")
    if not np.array_equal(got, expected):
        raise SystemExit(f"the cluster's predictions differ: largest difference {np.max(np.abs(got - expected))}")
    print(f"{rows} predictions from the cluster equal the registry's version {version}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="step", required=True)
    run = sub.add_parser("pipeline")
    run.add_argument("--kfp", required=True)
    run.add_argument("--tracking-uri", required=True)
    run.add_argument("--data-uri", required=True)
    run.add_argument("--timeout", type=int, default=1800)
    for name in ("stage", "manifests", "check"):
        step = sub.add_parser(name)
        step.add_argument("--version", required=True)
    sub.choices["stage"].add_argument("--dest", required=True)
    sub.choices["manifests"].add_argument("--out", required=True)
    sub.choices["check"].add_argument("--ingress", required=True)
    sub.choices["check"].add_argument("--host", required=True)
    sub.choices["check"].add_argument("--rows", type=int, default=100)
    args = parser.parse_args()
    if args.step == "pipeline":
        print(pipeline(args.kfp, args.tracking_uri, args.data_uri, args.timeout))
    elif args.step == "stage":
        stage(args.version, args.dest)
    elif args.step == "manifests":
        write_manifests(args.version, args.out)
    else:
        check(args.ingress, args.host, args.version, args.rows)


if __name__ == "__main__":
    main()
