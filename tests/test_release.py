"""Releases (notebook 09): sticky routing, shadow and canary in the service, the decision test, the manifests.

One workspace for the module holds two registered versions of notebook 01's runs: the best as ``champion`` and a
ridge model (worse, and with very different predictions) as ``challenger``. The service is tested with TestClient.
"""

from __future__ import annotations

import hashlib

import mlflow
import numpy as np
import pytest

from mlops_helpers import catchup, data, manifests, release, workspace
from mlops_helpers.names import MODEL_NAME as NAME
from mlops_helpers.registry import Registry
from mlops_helpers.serving import routing
from mlops_helpers.serving.app import create_app
from mlops_helpers.serving.predlog import log_frame
from mlops_helpers.serving.service import PredictionService

CHAMPION_URI, CHALLENGER_URI = f"models:/{NAME}@champion", f"models:/{NAME}@challenger"
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


# -- routing ----------------------------------------------------------------------------------------------------------


def test_the_bucket_is_the_keys_sha256_so_every_process_agrees():
    for key in ("2011-08-01T08:00", "user-42", ""):
        expected = int(hashlib.sha256(key.encode()).hexdigest()[:16], 16) / 2**64
        assert routing.bucket(key) == expected and 0 <= expected < 1


def test_routing_is_sticky_monotone_and_close_to_the_weight():
    keys = [f"key-{i}" for i in range(20_000)]
    for weight in (0.0, 0.1, 0.5, 1.0):
        sides = [routing.route(k, "canary", weight) for k in keys]
        assert sides == [routing.route(k, "canary", weight) for k in keys]  # sticky
        share = sides.count("challenger") / len(keys)
        assert abs(share - weight) < 4 * (0.25 / len(keys)) ** 0.5 + 1e-12  # within 4 sigma of a fair split
    at_10 = {k for k in keys if routing.route(k, "canary", 0.1) == "challenger"}
    at_50 = {k for k in keys if routing.route(k, "canary", 0.5) == "challenger"}
    assert at_10 < at_50  # raising the weight only adds keys to the challenger


def test_only_canary_sends_anything_to_the_challenger_and_bad_settings_are_refused():
    assert {routing.route(f"k{i}", mode, 1.0) for i in range(50) for mode in ("single", "shadow")} == {"champion"}
    with pytest.raises(ValueError, match="mode must be one of"):
        routing.route("k", "blue-green", 0.5)
    with pytest.raises(ValueError, match="weight must be between 0 and 1"):
        routing.route("k", "canary", 1.5)


# -- the decision test ------------------------------------------------------------------------------------------------


def _errors(mean: float, n: int, seed: int) -> np.ndarray:
    return np.abs(np.random.default_rng(seed).normal(mean, 20.0, n))


def test_a_clearly_better_challenger_is_promoted_and_a_worse_one_rolled_back():
    better = release.compare(_errors(60, 400, 1), _errors(40, 100, 2))
    assert better.decision == "promote" and better.ci_high < 0 and better.test == "Welch's t-test"
    assert better.ci_low < better.difference < better.ci_high and better.p_value < 0.001
    worse = release.compare(_errors(40, 400, 3), _errors(60, 100, 4))
    assert worse.decision == "rollback" and worse.ci_low > 0


def test_no_difference_means_continue_until_the_budget_is_spent():
    same = release.compare(_errors(50, 300, 5), _errors(50, 300, 6))
    assert same.ci_low < 0 < same.ci_high and same.decision == "continue"
    assert release.compare(_errors(50, 300, 5), _errors(50, 300, 6), final=True).decision == "rollback"
    few = release.compare(_errors(60, 300, 7), _errors(20, 10, 8))
    assert few.decision == "continue" and "only 10 observations" in few.reason


def test_the_interval_matches_scipy_and_has_its_stated_coverage():
    from scipy import stats

    a, b = _errors(50, 200, 9), _errors(45, 80, 10)
    ours = release.compare(a, b, confidence=0.9)
    theirs = stats.ttest_ind(b, a, equal_var=False).confidence_interval(0.9)
    assert (ours.ci_low, ours.ci_high) == pytest.approx((theirs.low, theirs.high))
    # Coverage: with equal means, a 95 % interval contains 0 in about 95 % of 400 repetitions.
    covered = sum(
        (r := release.compare(_errors(50, 60, 100 + i), _errors(50, 60, 1000 + i))).ci_low < 0 < r.ci_high
        for i in range(400)
    )
    assert 0.92 <= covered / 400 <= 0.98


def test_paired_comparison_sees_what_an_unpaired_one_cannot():
    rng = np.random.default_rng(11)
    hard = rng.gamma(2.0, 30.0, 200)  # how hard each request is: both models feel it
    champion, challenger = hard + rng.normal(3, 1, 200), hard + rng.normal(0, 1, 200)
    paired = release.compare(champion, challenger, paired=True)
    unpaired = release.compare(champion, challenger)
    assert paired.decision == "promote" and unpaired.decision == "continue"
    days = np.repeat(np.arange(20), 10)
    grouped = release.compare(champion, challenger, paired=True, groups=days, min_samples=10)
    assert grouped.n_champion == 20 and grouped.test == "paired t-test on group means"


def test_bad_inputs_get_a_clear_error():
    with pytest.raises(ValueError, match="same requests"):
        release.compare([1, 2, 3], [1, 2], paired=True)
    with pytest.raises(ValueError, match="NaN"):
        release.compare([1, 2, float("nan")], [1, 2, 3])
    with pytest.raises(ValueError, match="at least 2"):
        release.compare([1], [1, 2])
    with pytest.raises(ValueError, match="groups has 2 labels"):
        release.compare([1, 2, 3], [1, 2, 3], paired=True, groups=["a", "b"])


# -- the service with two variants ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(tmp_path_factory, module_tracking_env):
    """Champion (the best run) and challenger (the ridge run) registered; the environment restored afterwards."""
    root = tmp_path_factory.mktemp("release") / "workspace"
    ws = workspace.setup(root)
    champion = catchup.ensure_champion(ws)
    runs = catchup.ensure_runs(ws)
    ridge = runs[runs["tags.family"] == "ridge"].iloc[0]
    model_id = mlflow.get_run(ridge["run_id"]).outputs.model_outputs[0].model_id
    challenger = mlflow.register_model(f"models:/{model_id}", NAME)
    Registry(NAME).move("challenger", challenger.version, "test challenger")
    yield ws, str(champion.version), str(challenger.version)


@pytest.fixture(scope="module")
def records():
    X, _ = data.xy(data.window(data.load_bikes(), "2011-08-01", "2011-08-03"))
    return X.to_dict("records")


def _client(app):
    from fastapi.testclient import TestClient

    return TestClient(app)


def test_shadow_mode_answers_with_the_champion_and_logs_both(registry, records, tmp_path):
    _, champion, challenger = registry
    log_path = tmp_path / "shadow.jsonl"
    app = create_app(PredictionService(CHAMPION_URI, challenger_uri=CHALLENGER_URI, mode="shadow", log_path=log_path))
    with _client(app) as http:
        answers = [http.post("/predict", json=r, headers={routing.KEY_HEADER: f"k{i}"}) for i, r in enumerate(records)]
        assert {a.json()["variant"] for a in answers} == {"champion"}
        assert {a.headers[routing.VARIANT_HEADER] for a in answers} == {"champion"}
        assert {a.json()["version"] for a in answers} == {champion}
        metrics = http.get("/metrics").text
    log = log_frame(log_path)
    served, shadow = log[log["served"]], log[~log["served"].astype(bool)]
    assert len(served) == len(shadow) == len(records)
    assert set(shadow["variant"]) == {"challenger"} and set(shadow["version"]) == {challenger}
    assert list(served["request_id"]) == list(shadow["request_id"]) and list(served["key"]) == list(shadow["key"])
    assert (served["prediction"].to_numpy() != shadow["prediction"].to_numpy()).any()  # two different models
    assert f'shadow_predicted_rows_total{{version="{challenger}"}} {float(len(records))}' in metrics
    assert f'predicted_rows_total{{variant="champion",version="{champion}"}} {float(len(records))}' in metrics


def test_canary_routes_each_key_as_route_says_and_keeps_it(registry, records, tmp_path):
    _, champion, challenger = registry
    app = create_app(
        PredictionService(CHAMPION_URI, challenger_uri=CHALLENGER_URI, weight=0.5, log_path=tmp_path / "c.jsonl")
    )
    with _client(app) as http:
        assert http.get("/routing").json()["mode"] == "canary"  # the default with a challenger
        for i, record in enumerate(records):
            key = f"user-{i}"
            expected = routing.route(key, "canary", 0.5)
            got = [http.post("/predict", json=record, headers={routing.KEY_HEADER: key}).json() for _ in range(3)]
            assert {g["variant"] for g in got} == {expected}
            assert {g["version"] for g in got} == {challenger if expected == "challenger" else champion}
    log = log_frame(tmp_path / "c.jsonl")
    assert log["served"].all() and set(log["variant"]) == {"champion", "challenger"}


def test_routing_changes_without_a_restart_and_refuses_nonsense(registry, records, tmp_path):
    app = create_app(
        PredictionService(CHAMPION_URI, challenger_uri=CHALLENGER_URI, mode="shadow", log_path=tmp_path / "r.jsonl")
    )
    with _client(app) as http:
        changed = http.put("/routing", json={"mode": "canary", "weight": 1.0})
        assert changed.status_code == 200 and changed.json()["mode"] == "canary"
        assert http.post("/predict", json=records[0]).json()["variant"] == "challenger"  # 100 %: everything
        for body, field in (
            ({"weight": 1.5}, "weight"),
            ({"weight": "half"}, "weight"),
            ({"mode": "blue-green"}, "mode"),
            ({"colour": "red"}, "colour"),
        ):
            refused = http.put("/routing", json=body)
            assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", field]
        assert http.get("/routing").json()["weight"] == 1.0  # unchanged by the refusals
        assert 'routing_mode{mode="canary"} 1.0' in http.get("/metrics").text
    alone = create_app(PredictionService(CHAMPION_URI, log_path=tmp_path / "alone.jsonl"))
    with _client(alone) as http:
        conflict = http.put("/routing", json={"mode": "shadow"})
        assert conflict.status_code == 409 and "needs a challenger" in conflict.json()["detail"][0]["msg"]


def test_reload_follows_the_aliases(registry, records, tmp_path):
    _, champion, challenger = registry
    registry = Registry(NAME)
    app = create_app(PredictionService(CHAMPION_URI, challenger_uri=CHALLENGER_URI, log_path=tmp_path / "reload.jsonl"))
    try:
        with _client(app) as http:
            assert http.post("/reload").json()["changed"] is False
            registry.promote(challenger, "test promotion")
            after = http.post("/reload").json()
            assert after["changed"] and after["mode"] == "single" and after["variants"]["challenger"] is None
            assert after["variants"]["champion"]["version"] == challenger
            assert http.get("/health").json()["version"] == challenger
            assert http.post("/predict", json=records[0]).json()["version"] == challenger
    finally:
        registry.rollback("test over")
        registry.move("challenger", challenger, "test over")
    assert registry.aliases()["champion"] == champion


def test_a_challenger_with_another_signature_is_refused(registry, tmp_path):
    del registry  # only its workspace is needed
    from sklearn.linear_model import LinearRegression

    X, y = data.xy(data.window(data.load_bikes(), "2011-01-01", "2011-02-01"))
    other = X[["hr", "temp"]]
    with mlflow.start_run():
        info = mlflow.sklearn.log_model(LinearRegression().fit(other, y), name="model", input_example=other.head(2))
    with pytest.raises(ValueError, match="another input signature"):
        create_app(PredictionService(CHAMPION_URI, challenger_uri=info.model_uri, log_path=tmp_path / "x.jsonl"))
    with pytest.raises(ValueError, match="needs a challenger"):
        create_app(PredictionService(CHAMPION_URI, mode="canary", log_path=tmp_path / "x.jsonl"))


# -- manifests --------------------------------------------------------------------------------------------------------


def test_kserve_manifests_from_the_registry(registry):
    _, champion, challenger = registry
    written = manifests.kserve_manifests(NAME, canary_percent=20, namespace="bikes")
    assert set(written) == {"stable", "canary", "promote", "rollback"}
    for step, manifest in written.items():
        assert manifest["apiVersion"] == "serving.kserve.io/v1beta1" and manifest["kind"] == "InferenceService"
        meta = manifest["metadata"]
        assert meta["name"] == "citybikes-demand" and meta["namespace"] == "bikes"
        assert meta["annotations"]["serving.kserve.io/deploymentMode"] == "Knative"
        model = manifest["spec"]["predictor"]["model"]
        assert model["modelFormat"] == {"name": "mlflow"} and model["protocolVersion"] == "v2"
        version = champion if step == "stable" else challenger
        assert meta["annotations"]["mlops-course/model-version"] == version
        assert model["storageUri"] == f"s3://mlops-course-models/citybikes-demand/{version}"
    percents = {step: m["spec"]["predictor"].get("canaryTrafficPercent") for step, m in written.items()}
    assert percents == {"stable": None, "canary": 20, "promote": None, "rollback": 0}
    import yaml

    assert yaml.safe_load(manifests.to_yaml(written["canary"])) == written["canary"]


def test_kserve_manifests_refuse_what_cannot_be_released(registry):
    _, champion, _ = registry
    for bad in (0, 100, 12.5, True):
        with pytest.raises(ValueError, match="canary_percent"):
            manifests.kserve_manifests(NAME, canary_percent=bad)
    with pytest.raises(ValueError, match="same version"):
        manifests.kserve_manifests(NAME, champion=champion, challenger=champion)
    with pytest.raises(ValueError, match="has no version 999"):
        manifests.kserve_manifests(NAME, champion=champion, challenger="999")


def test_names_storage_and_seldon():
    assert manifests.k8s_name("CityBikes_Demand v2") == "citybikes-demand-v2"
    assert manifests.k8s_name("42-model") == "m-42-model" and len(manifests.k8s_name("x" * 100)) == 63
    assert manifests.storage_uri("s3://team/artifacts/1/m/model", "m", "3", "s3://x") == "s3://team/artifacts/1/m/model"
    assert manifests.storage_uri("/home/me/ws/artifacts", "m", "3", "gs://b/") == "gs://b/m/3"
    canary = manifests.seldon_experiment(NAME, "bikes-v1", "bikes-v2", weight=10)
    assert canary["kind"] == "Experiment" and canary["spec"]["default"] == "bikes-v1"
    assert sum(c["weight"] for c in canary["spec"]["candidates"]) == 100
    shadow = manifests.seldon_experiment(NAME, "bikes-v1", "bikes-v2", shadow=True)
    assert shadow["spec"]["mirror"] == {"name": "bikes-v2", "percent": 100}
    assert [c["name"] for c in shadow["spec"]["candidates"]] == ["bikes-v1"]
