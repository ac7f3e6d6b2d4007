"""The release on a cluster: every generated manifest validates against the real CRD, strictly (an unknown field is an
error, as ``kubectl --validate=strict`` makes it), the deployment mode is named as KServe 0.16 names it, and the
runtime and storage layout are the ones ``make runtime-proof`` loads the champion with.

The CRDs are the projects' own (``../shared/schemas``, see its README); where that folder is absent (a learner's
clone) the CRD tests skip with that reason.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import yaml

from mlops_helpers import REPO_ROOT, environment, manifests
from mlops_helpers.names import MODEL_NAME as NAME

SCHEMAS = REPO_ROOT.parent / "shared" / "schemas"
#: kind -> CRD file in ../shared/schemas
CRDS = {
    "InferenceService": "kserve-inferenceservice-v0.16.0.yaml",
    "Experiment": "seldon-core-2-experiment.yaml",
    "Model": "seldon-core-2-model.yaml",
    "Server": "seldon-core-2-server.yaml",
}
#: Kinds whose CRD is not in ../shared/schemas yet: validated only in part (see the test), until it is added there.
NOT_IN_SHARED_YET = {"Model", "Server"}
needs_schemas = pytest.mark.skipif(not SCHEMAS.is_dir(), reason=f"the real CRDs are not beside the repo ({SCHEMAS})")


def strict(schema: dict) -> dict:
    """The CRD's schema as ``kubectl --validate=strict`` applies it: every object schema that lists ``properties``
    and does not preserve unknown fields refuses the others; the ``x-kubernetes-*`` keys are dropped."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: strict(v) for k, v in schema.items() if not k.startswith("x-kubernetes-")}
    if "properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
        out.setdefault("additionalProperties", False)
    return out


#: What the API server checks in ``metadata`` (ObjectMeta), for the fields the course writes.
OBJECT_META = {
    "type": "object",
    "required": ["name"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 63}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def validator(kind: str):
    """A JSON Schema (draft 4) validator for ``kind`` from its real CRD, strict, or None if the CRD is not here."""
    from jsonschema import Draft4Validator

    path = SCHEMAS / CRDS[kind]
    if not path.exists():
        return None
    crd = yaml.safe_load(path.read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema = strict(copy.deepcopy(version["schema"]["openAPIV3Schema"]))
    schema["properties"]["metadata"] = OBJECT_META
    schema["properties"]["apiVersion"] = {"enum": [f"{crd['spec']['group']}/{version['name']}"]}
    schema["properties"]["kind"] = {"enum": [kind]}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata", "spec"})
    return Draft4Validator(schema)


def problems(document: dict) -> list[str]:
    found = validator(document["kind"])
    assert found is not None, f"no CRD for {document['kind']} in {SCHEMAS}"
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in found.iter_errors(document)]


@pytest.fixture(scope="module")
def release(ridge_challenger):
    """A champion and a challenger (the ridge run of notebook 01) registered in a throw-away workspace."""
    return ridge_challenger


@pytest.fixture(scope="module")
def documents(release) -> list[dict]:
    """Every manifest the course generates for a release."""
    _, champion, challenger = release
    kserve = manifests.kserve_manifests(NAME, canary_percent=10)
    names = [f"{manifests.k8s_name(NAME)}-v{v}" for v in (champion, challenger)]
    seldon = [
        *manifests.seldon_models(NAME, [champion, challenger]),
        manifests.seldon_server(),
        manifests.seldon_experiment(NAME, *names, weight=10),
        manifests.seldon_experiment(NAME, *names, shadow=True),
    ]
    return [*kserve.values(), *seldon]


@needs_schemas
def test_every_generated_manifest_validates_against_its_real_crd_strictly(documents):
    kinds = sorted({d["kind"] for d in documents})
    assert kinds == ["Experiment", "InferenceService", "Model", "Server"]
    checked = [d for d in documents if (SCHEMAS / CRDS[d["kind"]]).exists()]
    assert {d["kind"] for d in checked} >= {"InferenceService", "Experiment"}
    errors = {f"{d['kind']}/{d['metadata']['name']}": problems(d) for d in checked}
    assert not any(errors.values()), errors
    missing = {d["kind"] for d in documents} - {d["kind"] for d in checked}
    assert missing <= NOT_IN_SHARED_YET, f"no CRD in {SCHEMAS} for {missing}"


@needs_schemas
def test_the_strict_check_refuses_what_kubectl_would(documents):
    canary = copy.deepcopy(next(d for d in documents if d["kind"] == "InferenceService"))
    canary["spec"]["predictor"]["canaryTrafficPercnt"] = 10  # misspelt
    canary["spec"]["predictor"]["model"]["modelFormat"]["flavor"] = "sklearn"  # no such field
    found = problems(canary)
    assert len(found) == 2 and all("Additional properties are not allowed" in p for p in found), found
    experiment = copy.deepcopy(next(d for d in documents if d["kind"] == "Experiment"))
    experiment["spec"]["candidates"][0]["weight"] = "ninety"
    experiment["metadata"]["name"] = "Not_A_Name"
    assert len(problems(experiment)) == 2


@needs_schemas
def test_what_has_no_crd_here_is_checked_where_it_can_be(documents):
    """Seldon's Model and Server CRDs are not in ../shared/schemas (the lead can add them: the first test then
    validates them too). Meanwhile the Server's container is a Kubernetes Container, whose schema the KServe CRD
    embeds: it must validate against that, strictly."""
    from jsonschema import Draft4Validator

    crd = yaml.safe_load((SCHEMAS / CRDS["InferenceService"]).read_text())
    (version,) = crd["spec"]["versions"]
    container = strict(version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["predictor"]
                       ["properties"]["containers"]["items"])  # fmt: skip
    server = next(d for d in documents if d["kind"] == "Server")
    for item in server["spec"]["podSpec"]["containers"]:
        assert not list(Draft4Validator(container).iter_errors(item)), item
    assert server["spec"]["serverConfig"] == "mlserver"
    for model in (d for d in documents if d["kind"] == "Model"):
        assert set(model["spec"]) == {"storageUri", "requirements", "memory"}  # fields of Seldon's ModelSpec
        assert manifests.SELDON_CAPABILITY in model["spec"]["requirements"]
        assert manifests.SELDON_CAPABILITY in server["spec"]["extraCapabilities"]


def test_the_deployment_mode_is_named_as_kserve_016_names_it(documents):
    services = [d for d in documents if d["kind"] == "InferenceService"]
    assert {d["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] for d in services} == {"Knative"}
    assert "Serverless" not in manifests.to_yaml(*services)  # deprecated since KServe 0.16


def test_the_predictor_runs_the_runtime_that_loads_the_model(documents, release):
    """MLServer's own image cannot read skops models: the predictor names KServe's MLServer runtime and replaces its
    image with the course's runtime image (proven by `make runtime-proof`)."""
    for document in (d for d in documents if d["kind"] == "InferenceService"):
        model = document["spec"]["predictor"]["model"]
        assert (model["runtime"], model["image"]) == ("kserve-mlserver", manifests.RUNTIME_IMAGE)
        env = {e["name"]: e["value"] for e in model["env"]}
        assert env == {
            "MLSERVER_MODEL_NAME": document["metadata"]["name"],
            "MLSERVER_MODEL_IMPLEMENTATION": manifests.MLFLOW_RUNTIME,
            "MLSERVER_MODEL_URI": "/mnt/models",
        }
    dockerfile = (REPO_ROOT / "docker" / "serving-runtime.Dockerfile").read_text()
    assert manifests.RUNTIME_IMAGE in dockerfile, "the build comment names the image the manifests use"


def test_the_runtime_lock_pins_what_the_model_needs():
    """The runtime image installs docker/serving-runtime.lock: MLServer, its MLflow runtime, and the model's own
    pins exactly as the course's lock has them (what the model's requirements.txt says)."""
    runtime = environment.read_pins(REPO_ROOT / "docker" / "serving-runtime.lock")
    assert runtime["mlserver"] == runtime["mlserver-mlflow"] == "1.7.1"
    for pin in environment.model_requirements():
        name, version = pin.split("==")
        assert runtime[environment.normalise(name)] == version, pin


def test_a_staged_version_is_the_model_and_its_mlserver_settings(release, tmp_path):
    _, champion, _ = release
    folder = manifests.stage_model(NAME, champion, tmp_path / "storage" / "citybikes-demand" / champion)
    assert (folder / "MLmodel").exists() and (folder / "requirements.txt").exists()
    settings = json.loads((folder / "model-settings.json").read_text())
    assert settings == {"name": "citybikes-demand", "implementation": "mlserver_mlflow.MLflowRuntime",
                        "parameters": {"uri": "./", "version": champion}}  # fmt: skip
    pins = (folder / "requirements.txt").read_text().split()
    assert pins == environment.model_requirements()  # what the runtime lock pins (test above)
    assert Path(folder).name == champion


def test_a_missing_alias_is_named_plainly(release):
    with pytest.raises(ValueError, match=r"has no alias 'previous': a canary needs a champion and a challenger"):
        manifests.kserve_manifests(NAME, challenger="previous")
