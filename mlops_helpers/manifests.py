"""The release on a cluster: KServe ``InferenceService`` and Seldon Core 2 ``Experiment`` manifests (notebook 09).

:func:`kserve_manifests` writes the release for KServe, generated from the registry: an ``InferenceService`` whose
predictor points at the challenger with ``canaryTrafficPercent``, plus the manifests to promote and to roll back.
:func:`seldon_experiment` writes Seldon Core 2's equivalent (an ``Experiment`` with weighted candidates, or a mirror
for shadow mode). They are checked against the projects' own CRDs in the tests.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from mlops_helpers.names import CHALLENGER, CHAMPION

if TYPE_CHECKING:  # pragma: no cover
    from mlflow import MlflowClient

_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


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
) -> dict[str, dict]:
    """The release of ``challenger`` as KServe ``InferenceService`` manifests, generated from the registry.

    Returns ``{"stable", "canary", "promote", "rollback"}``: ``stable`` serves the champion (what the cluster runs
    before the release); ``canary`` points the predictor at the challenger with ``canaryTrafficPercent`` (KServe
    keeps the last rolled-out revision, the champion, for the rest); ``promote`` drops the percent (100% to the
    challenger); ``rollback`` sets it to 0 (everything back to the champion). KServe canaries need the Serverless
    deployment mode (Knative), which the annotation requests. ``champion``/``challenger`` are version numbers; by
    default the versions the aliases point at. Raises ``ValueError`` if a version or alias does not exist.
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

    def manifest(version, percent: int | None) -> dict:
        predictor: dict[str, Any] = {
            "minReplicas": 1,
            "model": {
                "modelFormat": {"name": "mlflow"},
                "protocolVersion": "v2",
                "storageUri": storage_uri(version.source, k8s_name(model_name), str(version.version), storage_root),
                "resources": {
                    "requests": {"cpu": "100m", "memory": "512Mi"},
                    "limits": {"cpu": "1", "memory": "1Gi"},
                },
            },
        }
        if percent is not None:
            predictor = {"canaryTrafficPercent": percent, **predictor}
        return {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": {
                "name": k8s_name(model_name),
                "namespace": namespace,
                "labels": {"app.kubernetes.io/part-of": "mlops-course"},
                "annotations": {
                    "serving.kserve.io/deploymentMode": "Serverless",
                    "mlops-course/registered-model": model_name,
                    "mlops-course/model-version": str(version.version),
                    "mlops-course/champion-version": str(versions["champion"].version),
                },
            },
            "spec": {"predictor": predictor},
        }

    old, new = versions["champion"], versions["challenger"]
    return {
        "stable": manifest(old, None),
        "canary": manifest(new, canary_percent),
        "promote": manifest(new, None),
        "rollback": manifest(new, 0),
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
