"""Releasing a challenger: the online comparison, the decision, and the same release on a cluster (notebook 09).

The prediction service (:mod:`mlops_helpers.serving`) routes traffic between ``champion`` and ``challenger`` and
logs every prediction with its variant. Once the labels arrive, :func:`compare` answers the question a release needs:
is the challenger's online error lower than the champion's, and how sure are we? It states its test and returns a
confidence interval for the difference, and :class:`Comparison` turns that into ``promote``, ``rollback`` or
``continue`` (keep collecting). Two designs, two tests:

- **canary** (each request answered by one variant): the two samples are independent, so the test is Welch's t-test
  on the absolute errors (unequal variances, unequal sizes);
- **shadow** (both variants predict on every request): the errors are paired, so the test is the paired t-test on
  the per-request differences, or on their means per group (a day, say) when neighbouring requests are correlated,
  as hours are: averaging within a day and testing the daily means is the honest way to use correlated data.

Both rely on the central limit theorem for the mean of the errors (tens of observations at least): below
``min_samples`` the decision is ``continue``.

:func:`kserve_manifests` writes the same release for KServe: an ``InferenceService`` whose predictor points at the
challenger with ``canaryTrafficPercent``, generated from the registry, plus the manifests to promote and to roll back.
:func:`seldon_experiment` writes Seldon Core 2's equivalent (an ``Experiment`` with weighted candidates and a mirror).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

DECISIONS = ("promote", "rollback", "continue")


@dataclass(frozen=True)
class Comparison:
    """The online comparison of challenger and champion, and what it means for the release.

    ``difference`` is challenger minus champion (mean absolute error): negative means the challenger is better.
    ``ci_low``/``ci_high`` bound it at ``confidence``; ``p_value`` is two-sided for "no difference".
    """

    test: str
    n_champion: int
    n_challenger: int
    champion_mae: float
    challenger_mae: float
    difference: float
    ci_low: float
    ci_high: float
    confidence: float
    p_value: float
    decision: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line: the test, the difference with its interval, the p-value and the decision."""
        return (
            f"{self.test}: challenger - champion MAE = {self.difference:+.2f} "
            f"({self.confidence:.0%} CI {self.ci_low:+.2f} to {self.ci_high:+.2f}, p = {self.p_value:.2g}) "
            f"-> {self.decision.upper()}: {self.reason}"
        )


def _decide(low: float, high: float, n: int, min_samples: int, margin: float, final: bool) -> tuple[str, str]:
    if n < min_samples:
        return "continue", f"only {n} observations, {min_samples} are needed before deciding"
    if high < -margin:
        return "promote", "the challenger's error is lower, and the whole interval says so"
    if low > 0:
        return "rollback", "the challenger's error is higher, and the whole interval says so"
    if final:
        return "rollback", "no significant improvement by the end of the canary: the champion stays"
    return "continue", "the interval includes no improvement: keep collecting"


def compare(
    champion_errors,
    challenger_errors,
    *,
    paired: bool = False,
    groups=None,
    confidence: float = 0.95,
    min_samples: int = 30,
    margin: float = 0.0,
    final: bool = False,
) -> Comparison:
    """Compare two variants' absolute errors and decide.

    ``paired=False`` (canary): two independent samples, Welch's t-test. ``paired=True`` (shadow): the two arrays are
    the same requests in the same order; paired t-test on the differences, after averaging them within ``groups``
    (labels of the same length, e.g. the day of each request) when given. ``min_samples`` counts the smaller sample,
    or the pairs/groups. The challenger is promoted only when the whole interval lies below ``-margin``; it is rolled
    back when the whole interval lies above 0, or (``final=True``, the canary's budget is spent) when it is not
    better. Raises ``ValueError`` for empty, non-finite or mismatched input.
    """
    import numpy as np
    from scipy import stats

    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1), not {confidence!r}")
    a = np.abs(np.asarray(champion_errors, dtype="float64").reshape(-1))
    b = np.abs(np.asarray(challenger_errors, dtype="float64").reshape(-1))
    if a.size < 2 or b.size < 2:
        raise ValueError(f"each variant needs at least 2 errors to compare (champion {a.size}, challenger {b.size})")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("the errors contain NaN or infinity: join the labels first and drop requests without one")
    if paired:
        if a.size != b.size:
            raise ValueError(f"paired errors must be the same requests: {a.size} champion vs {b.size} challenger")
        diff = b - a
        if groups is not None:
            diff, n = _group_means(diff, groups)
            test = "paired t-test on group means"
        else:
            n, test = diff.size, "paired t-test"
        if n < 2:
            raise ValueError("a paired comparison needs at least 2 pairs (or groups)")
        result = stats.ttest_1samp(diff, 0.0)
        n_a = n_b = n
    else:
        result = stats.ttest_ind(b, a, equal_var=False)
        n, n_a, n_b = min(a.size, b.size), a.size, b.size
        test = "Welch's t-test"
    ci = result.confidence_interval(confidence)
    low, high = float(ci.low), float(ci.high)
    # The tested quantity: the mean paired difference (of group means), or the difference of the two means.
    difference = float(diff.mean()) if paired else float(b.mean() - a.mean())
    decision, reason = _decide(low, high, n, min_samples, margin, final)
    return Comparison(
        test=test,
        n_champion=int(n_a),
        n_challenger=int(n_b),
        champion_mae=float(a.mean()),
        challenger_mae=float(b.mean()),
        difference=difference,
        ci_low=low,
        ci_high=high,
        confidence=confidence,
        p_value=float(result.pvalue),
        decision=decision,
        reason=reason,
    )


def _group_means(values: np.ndarray, groups) -> tuple[np.ndarray, int]:
    import pandas as pd

    groups = list(groups)
    if len(groups) != values.size:
        raise ValueError(f"groups has {len(groups)} labels for {values.size} values")
    means = pd.Series(values).groupby(pd.Series(groups), sort=True).mean().to_numpy()
    return means, int(means.size)


# -- the same release on a cluster ------------------------------------------------------------------------------------

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
    client=None,
) -> dict[str, dict]:
    """The release of ``challenger`` as KServe ``InferenceService`` manifests, generated from the registry.

    Returns ``{"stable", "canary", "promote", "rollback"}``: ``stable`` serves the champion (what the cluster runs
    before the release); ``canary`` points the predictor at the challenger with ``canaryTrafficPercent`` (KServe
    keeps the last rolled-out revision, the champion, for the rest); ``promote`` drops the percent (100% to the
    challenger); ``rollback`` sets it to 0 (everything back to the champion). KServe canaries need the Serverless
    deployment mode (Knative), which the annotation requests. ``champion``/``challenger`` are version numbers; by
    default the versions the aliases point at. Raises ``ValueError`` if a version or alias does not exist.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    if isinstance(canary_percent, bool) or not isinstance(canary_percent, int) or not 0 < canary_percent < 100:
        raise ValueError(f"canary_percent must be an integer between 1 and 99, not {canary_percent!r}")
    client = client or mlflow.MlflowClient()
    versions = {}
    for alias, number in (("champion", champion), ("challenger", challenger)):
        try:
            if number is None:
                versions[alias] = client.get_model_version_by_alias(model_name, alias)
            else:
                versions[alias] = client.get_model_version(model_name, str(number))
        except MlflowException:
            what = f"version {number}" if number is not None else f"an alias {alias!r}"
            raise ValueError(f"{model_name} has no {what}: a canary needs a champion and a challenger") from None
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


__all__ = [
    "DECISIONS",
    "Comparison",
    "compare",
    "k8s_name",
    "kserve_manifests",
    "seldon_experiment",
    "storage_uri",
    "to_yaml",
]
