"""The release on a cluster: KServe ``InferenceService`` and Seldon Core 2 ``Experiment`` manifests (notebook 09).

:func:`kserve_manifests` writes the release for KServe, generated from the registry: an ``InferenceService`` whose
predictor points at the challenger with ``canaryTrafficPercent``, plus the manifests to promote and to roll back.
:func:`seldon_experiment` writes Seldon Core 2's equivalent (an ``Experiment`` with weighted candidates, or a mirror
for shadow mode) over the ``Model`` resources of :func:`seldon_models`, served by :func:`seldon_server`. The tests
check them against the projects' own CRDs, strictly (an unknown field is an error, as ``kubectl --validate=strict``).

**The runtime.** ``modelFormat: mlflow`` selects KServe's ``kserve-mlserver`` runtime (and Seldon's ``mlserver``
servers): MLServer 1.7.1, whose image pins mlflow 2.19 and scikit-learn 1.5.2, which cannot read the course's models
(MLflow 3 saves scikit-learn with skops: "Unrecognized serialization format: skops"). So both releases run the same
MLServer in :data:`RUNTIME_IMAGE`, built by ``docker/serving-runtime.Dockerfile`` from ``docker/serving-runtime.lock``:
MLServer 1.7.1 and its MLflow runtime with the model's own pins (``mlops_helpers/model-requirements.txt``, from the
course's lock). ``make runtime-proof`` installs that lock into a throw-away venv and loads the champion with it, as
KServe and as Seldon would (``scripts/serving_runtime.py``). :func:`stage_model` writes what the object store must
hold for a version: the MLflow model and MLServer's ``model-settings.json``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_helpers import __version__
from mlops_helpers.names import CHALLENGER, CHAMPION

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

#: The serving runtime both releases run: MLServer 1.7.1 with the model's pinned requirements
#: (docker/serving-runtime.Dockerfile; push it where the cluster pulls from and pass ``image=``).
RUNTIME_IMAGE = f"citybikes-serving-runtime:{__version__}"
#: MLServer's MLflow runtime, the class that loads an MLflow model.
MLFLOW_RUNTIME = "mlserver_mlflow.MLflowRuntime"
#: KServe's name for the serverless (Knative) mode that canaries need; ``Serverless`` is deprecated since 0.16.
DEPLOYMENT_MODE = "Knative"
#: The Seldon Core 2 capability only :func:`seldon_server` offers, so the course's models land on it.
SELDON_CAPABILITY = "citybikes-runtime"


def k8s_name(text: str) -> str:
    """``text`` as a Kubernetes resource name (DNS-1035 label: lower case, digits and '-', a letter first, <= 63)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    name = re.sub(r"-{2,}", "-", name)
    if not name or not name[0].isalpha():
        name = f"m-{name}".strip("-")
    name = name[:63].rstrip("-")
    if not _DNS_1035.match(name):
        raise ValueError(f"cannot make a Kubernetes name from {text!r}")
    return name


def storage_uri(source: str, name: str, version: str, storage_root: str) -> str:
    """Where the cluster reads a version's model: its own artifact URI when that is already remote (``s3://``,
    ``gs://``...), else ``<storage_root>/<name>/<version>`` (copy it there: ``mlflow artifacts download`` then your
    object store's copy command)."""
    if re.match(r"^(s3|gs|azureblob|https?|pvc)://", source):
        return source
    return f"{storage_root.rstrip('/')}/{name}/{version}"


def kserve_manifests(
    model_name: str,
    *,
    canary_percent: int = 10,
    namespace: str = "mlops-course",
    storage_root: str = "s3://mlops-course-models",
    champion: str | None = None,
    challenger: str | None = None,
    client: MlflowClient | None = None,
    image: str = RUNTIME_IMAGE,
    service_account: str | None = None,
) -> dict[str, dict]:
    """The release of ``challenger`` as KServe ``InferenceService`` manifests, generated from the registry.

    Returns ``{"stable", "canary", "promote", "rollback"}``: ``stable`` serves the champion (what the cluster runs
    before the release); ``canary`` points the predictor at the challenger with ``canaryTrafficPercent`` (KServe
    keeps the last rolled-out revision, the champion, for the rest); ``promote`` drops the percent (100% to the
    challenger); ``rollback`` sets it to 0 (everything back to the champion). KServe canaries need the serverless
    deployment mode, which the annotation requests (:data:`DEPLOYMENT_MODE`). The predictor runs KServe's MLServer
    runtime with ``image`` (:data:`RUNTIME_IMAGE`, which can load the model) in place of its own;
    ``service_account`` names the one whose secret lets KServe read ``storageUri``. ``champion``/``challenger`` are
    version numbers; by default the versions the aliases point at. Raises
    ``ValueError`` if a version or alias does not exist.
    """
    from mlops_helpers.registry import Registry, RegistryError

    if isinstance(canary_percent, bool) or not isinstance(canary_percent, int) or not 0 < canary_percent < 100:
        raise ValueError(f"canary_percent must be an integer between 1 and 99, not {canary_percent!r}")
    registry = Registry(model_name, client)
    versions = {}
    for alias, number in ((CHAMPION, champion), (CHALLENGER, challenger)):
        try:
            versions[alias] = registry.version(alias if number is None else number)
        except RegistryError as exc:
            raise ValueError(f"{exc}: a canary needs a champion and a challenger") from None
    if str(versions["champion"].version) == str(versions["challenger"].version):
        same = versions["champion"].version
        raise ValueError(f"champion and challenger are the same version ({same}): there is nothing to release")

    old, new = versions["champion"], versions["challenger"]

    def manifest(version, percent: int | None) -> dict:
        return inference_service(model_name, version, champion=str(old.version), percent=percent, namespace=namespace,
                                 storage_root=storage_root, image=image, service_account=service_account)  # fmt: skip

    return {
        "stable": manifest(old, None),
        "canary": manifest(new, canary_percent),
        "promote": manifest(new, None),
        "rollback": manifest(new, 0),
    }


def inference_service(
    model_name: str,
    version,
    *,
    champion: str,
    percent: int | None = None,
    namespace: str = "mlops-course",
    storage_root: str = "s3://mlops-course-models",
    image: str = RUNTIME_IMAGE,
    service_account: str | None = None,
) -> dict:
    """One KServe ``InferenceService`` serving the registry's ``version`` (a ``ModelVersion``), with
    ``canaryTrafficPercent`` when ``percent`` is given; ``champion`` is the champion's version number."""
    name = k8s_name(model_name)
    predictor: dict[str, Any] = {
        "minReplicas": 1,
        "model": {
            "modelFormat": {"name": "mlflow"},
            "runtime": "kserve-mlserver",
            "protocolVersion": "v2",
            "image": image,  # the runtime's own image cannot read skops models (see the module docstring)
            "storageUri": storage_uri(version.source, name, str(version.version), storage_root),
            "env": mlserver_env(name),
            "resources": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
        },
    }
    if service_account:
        predictor = {"serviceAccountName": service_account, **predictor}
    if percent is not None:
        predictor = {"canaryTrafficPercent": percent, **predictor}
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "mlops-course", "modelClass": MLFLOW_RUNTIME},
            "annotations": {
                "serving.kserve.io/deploymentMode": DEPLOYMENT_MODE,
                "mlops-course/registered-model": model_name,
                "mlops-course/model-version": str(version.version),
                "mlops-course/champion-version": str(champion),
            },
        },
        "spec": {"predictor": predictor},
    }


def mlserver_env(name: str, models_dir: str = "/mnt/models") -> list[dict[str, str]]:
    """The environment MLServer reads its one model from (KServe's ``kserve-mlserver`` runtime sets the same: the
    model in ``/mnt/models``, where KServe's storage initializer puts ``storageUri``)."""
    return [
        {"name": "MLSERVER_MODEL_NAME", "value": name},
        {"name": "MLSERVER_MODEL_IMPLEMENTATION", "value": MLFLOW_RUNTIME},
        {"name": "MLSERVER_MODEL_URI", "value": models_dir},
    ]


def model_settings(model_name: str, version: str) -> dict:
    """MLServer's ``model-settings.json`` for a version: Seldon Core 2 needs it beside the model in the object store
    (its agent loads the folder into MLServer by this file)."""
    return {
        "name": k8s_name(model_name),
        "implementation": MLFLOW_RUNTIME,
        "parameters": {"uri": "./", "version": str(version)},
    }


def stage_model(model_name: str, version: str, dest: str | Path, client: MlflowClient | None = None) -> Path:
    """Write what the object store must hold for ``version`` into ``dest``: the registered MLflow model's files and
    MLServer's ``model-settings.json``. Copy ``dest`` to ``<storage_root>/<name>/<version>`` (``storage_uri``)."""
    import mlflow

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    mlflow.artifacts.download_artifacts(f"models:/{model_name}/{version}", dst_path=str(dest))
    (dest / "model-settings.json").write_text(json.dumps(model_settings(model_name, version), indent=2) + "\n")
    return dest


def seldon_models(
    model_name: str,
    versions: list[str],
    *,
    namespace: str = "mlops-course",
    storage_root: str = "s3://mlops-course-models",
    client: MlflowClient | None = None,
) -> list[dict]:
    """Seldon Core 2 ``Model`` resources, one per registered version (named ``<name>-v<version>``), each needing the
    ``mlflow`` capability and :data:`SELDON_CAPABILITY`, which only :func:`seldon_server` offers."""
    from mlops_helpers.registry import Registry

    registry, name = Registry(model_name, client), k8s_name(model_name)
    documents = []
    for ref in versions:
        version = registry.version(ref)
        documents.append({
            "apiVersion": "mlops.seldon.io/v1alpha1",
            "kind": "Model",
            "metadata": {"name": f"{name}-v{version.version}", "namespace": namespace,
                         "labels": {"app.kubernetes.io/part-of": "mlops-course"}},
            "spec": {
                "storageUri": storage_uri(version.source, name, str(version.version), storage_root),
                "requirements": ["mlflow", SELDON_CAPABILITY],
                "memory": "512Mi",
            },
        })  # fmt: skip
    return documents


def seldon_server(namespace: str = "mlops-course", image: str = RUNTIME_IMAGE) -> dict:
    """A Seldon Core 2 ``Server`` from the ``mlserver`` server config, its MLServer container in ``image``."""
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Server",
        "metadata": {"name": "citybikes-mlserver", "namespace": namespace},
        "spec": {
            "serverConfig": "mlserver",
            "extraCapabilities": [SELDON_CAPABILITY],
            "podSpec": {"containers": [{"name": "mlserver", "image": image}]},
        },
    }


def seldon_experiment(
    model_name: str, champion: str, challenger: str, *, weight: int = 10, shadow: bool = False
) -> dict:
    """Seldon Core 2's ``Experiment`` for the same release: weighted candidates (canary), or the champion answering
    with the challenger as ``mirror`` (shadow: its answers are never returned). ``champion``/``challenger`` are the
    names of two Seldon ``Model`` resources (one per registered version)."""
    if not 0 < weight < 100:
        raise ValueError(f"weight must be between 1 and 99, not {weight!r}")
    base = k8s_name(model_name)
    spec: dict[str, Any] = {"default": champion}
    if shadow:
        spec["candidates"] = [{"name": champion, "weight": 100}]
        spec["mirror"] = {"name": challenger, "percent": 100}
    else:
        spec["candidates"] = [{"name": champion, "weight": 100 - weight}, {"name": challenger, "weight": weight}]
    kind = "shadow" if shadow else "canary"
    return {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Experiment",
        "metadata": {"name": f"{base}-{kind}"},
        "spec": spec,
    }


def to_yaml(*documents: dict) -> str:
    """Manifests as one YAML stream (``---`` between documents), keys in the order written."""
    import yaml

    return "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in documents)
