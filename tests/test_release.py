"""Releases (notebook 09): sticky routing, shadow and canary in the service, the decision tests (a planned horizon,
daily looks), the manifests, and the notebook's canary guard without Prometheus.

One workspace for the module holds two registered versions of notebook 01's runs: the best as ``champion`` and a
ridge model (worse, and with very different predictions) as ``challenger``. The service is tested with TestClient.
"""

from __future__ import annotations

import hashlib

import mlflow
import numpy as np
import pytest

from mlops_helpers import data, manifests, release
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


# -- planning, the daily unit and the sequential test --------------------------------------------------------------


def test_days_needed_is_the_first_day_count_whose_t_test_has_the_power():
    from scipy import stats

    z = stats.norm.ppf(0.975) + stats.norm.ppf(0.8)
    assert int(np.ceil((z * 10 / 5) ** 2)) == 32  # the normal formula: a first guess, a little optimistic
    assert release.days_needed(10.0, 5.0) == 34
    assert release.days_needed(10.0, -5.0) == 34  # the sign of the effect does not matter
    assert release.t_test_power(34, 0.5) >= 0.8 > release.t_test_power(33, 0.5)
    # Few days: the normal formula says 10, a t-test needs 12 (its power at 10 days is about 0.74).
    assert int(np.ceil((z * 8.15 / 7.5) ** 2)) == 10 and release.days_needed(8.15, 7.5) == 12
    # The power is what simulated t-tests find: after 12 days about 0.83, after 10 about 0.74.
    rng = np.random.default_rng(1)
    for days in (10, 12):
        sample = rng.normal(7.5, 8.15, (20_000, days))
        found = (stats.ttest_1samp(sample, 0.0, axis=1).statistic > stats.t.ppf(0.975, days - 1)).mean()
        assert abs(found - release.t_test_power(days, 7.5 / 8.15)) < 0.01
    detectable = release.detectable_effect(10.0, 34)
    assert detectable <= 5.0 < release.detectable_effect(10.0, 33)
    assert abs(release.t_test_power(7, release.detectable_effect(1.0, 7)) - 0.8) < 1e-9
    assert release.detectable_effect(1.0, 2) > 10  # two days detect only a huge difference


def test_t_paths_are_the_t_statistics_of_the_first_days():
    from scipy import stats

    x = np.random.default_rng(2).normal(3.0, 2.0, (3, 12))
    paths = release.t_paths(x)
    assert np.isnan(paths[:, 0]).all()
    for k in range(2, 13):
        assert np.allclose(paths[:, k - 1], stats.ttest_1samp(x[:, :k], 0.0, axis=1).statistic)


def test_the_boundary_keeps_alpha_over_daily_looks_where_the_naive_test_does_not():
    from scipy import stats

    boundary = release.sequential_boundary(16, first_look=7, seed=3)
    assert boundary > stats.t.ppf(0.975, 15)  # stricter than one look's threshold
    assert release.sequential_boundary(16, first_look=2, seed=3) > boundary  # t of two or three days: heavy tails
    fresh = release.peeking(16, boundary, first_look=7, seed=4)  # checked on other simulations than it was made on
    assert abs(fresh["sequential"] - 0.05) < 0.01 and abs(fresh["single look"] - 0.05) < 0.01
    assert fresh["naive"] > 0.1
    heavy = release.peeking(16, boundary, first_look=7, seed=5, df=3)
    assert heavy["sequential"] <= 0.05 < heavy["naive"]


def test_the_plan_is_the_shortest_horizon_with_the_power_asked():
    plan = release.plan_sequential(8.0, 7.5, first_look=7, simulations=5000, seed=6)
    assert plan.power >= 0.8 and plan.days >= plan.fixed_days == release.days_needed(8.0, 7.5)
    shorter = plan.days - 1
    if shorter >= max(plan.fixed_days, plan.first_look):
        c = release.sequential_boundary(shorter, first_look=7, simulations=5000, seed=6)
        assert release.sequential_power(shorter, 7.5 / 8.0, c, first_look=7, simulations=5000, seed=6) < 0.8
    assert plan.boundary == release.sequential_boundary(plan.days, first_look=7, simulations=5000, seed=6)
    with pytest.raises(ValueError, match="not enough"):
        release.plan_sequential(8.0, 0.1, max_days=30, simulations=500)


def test_a_daily_look_decides_only_beyond_the_boundary_and_within_the_plan():
    plan = release.SequentialPlan(days=10, first_look=5, boundary=3.0)
    better = [-10.0, -9.0, -11.0, -10.5, -9.5, -10.2]
    look = release.sequential_look(better, plan)
    mean, se = np.mean(better), np.std(better, ddof=1) / np.sqrt(6)
    assert look.decision == "promote" and look.t == pytest.approx(mean / se)
    assert (look.ci_low, look.ci_high) == pytest.approx((mean - 3 * se, mean + 3 * se))
    assert release.sequential_look([-x for x in better], plan).decision == "rollback"
    assert release.sequential_look(better[:4], plan).decision == "continue"  # before the first look
    noise = [1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 1.5, -1.5, 0.2, -0.2]
    assert release.sequential_look(noise[:8], plan).decision == "continue"
    last = release.sequential_look(noise, plan)
    assert last.decision == "rollback" and "no difference shown" in last.reason and "day 10 of 10" in last.summary()
    with pytest.raises(ValueError, match="beyond the plan"):
        release.sequential_look([*noise, 0.0], plan)
    with pytest.raises(ValueError, match="finite"):
        release.sequential_look([1.0, float("nan")], plan)


def _labelled_log():
    import pandas as pd

    rows = []
    for day, (champion, challenger) in {"2011-08-01": (10.0, 7.0), "2011-08-02": (20.0, 14.0)}.items():
        for hour in range(3):
            key = f"{day}T{hour:02d}:00"
            rows.append({"key": key, "day": day, "variant": "champion", "served": True, "abs_error": champion + hour})
            rows.append({"key": key, "day": day, "variant": "challenger", "served": False, "abs_error": challenger})
    return pd.DataFrame(rows)


def test_daily_differences_pair_within_the_day_or_compare_within_it():
    log = _labelled_log()
    paired = release.daily_differences(log, paired=True)
    assert paired.to_dict() == {"2011-08-01": pytest.approx(7.0 - 11.0), "2011-08-02": pytest.approx(14.0 - 21.0)}
    canary = log.copy()
    canary["served"] = True  # as if each request had been answered by the variant on its row
    assert release.daily_differences(canary, paired=False).to_dict() == pytest.approx(paired.to_dict())
    only_champion = log[log["served"]]
    with pytest.raises(ValueError, match="answered by both variants"):
        release.daily_differences(only_champion, paired=False)
    with pytest.raises(ValueError, match="join the labels first"):
        release.daily_differences(log.drop(columns="abs_error"), paired=True)


def test_planning_refuses_nonsense():
    with pytest.raises(ValueError, match="sd must be positive"):
        release.days_needed(0.0, 5.0)
    with pytest.raises(ValueError, match="alpha and power"):
        release.days_needed(10.0, 5.0, power=1.0)
    with pytest.raises(ValueError, match="first_look"):
        release.sequential_boundary(5, first_look=7)
    with pytest.raises(ValueError, match="days must be at least 2"):
        release.detectable_effect(10.0, 1)
    with pytest.raises(ValueError, match="at least 2 days"):
        release.t_test_power(1, 1.0)


# -- the service with two variants ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(ridge_challenger):
    """Champion (the best run) and challenger (the ridge run) registered; the environment restored afterwards."""
    return ridge_challenger


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


# -- notebook 09's guard without Prometheus ---------------------------------------------------------------------------


def test_notebook_09_guard_rolls_back_without_prometheus(tmp_path, monkeypatch):
    """CI installs Prometheus and Alertmanager, so the notebook's own run takes the real path; this forces the other:
    the guard's error rule evaluated in Python and the notification posted to the same guard (about a minute and a
    half: in an empty workspace the catch-up runs the pipeline)."""
    import nbformat

    from mlops_helpers import course

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    (result,) = course.run(["09"], tmp_path / "ws", {"USE_PROMETHEUS": False})
    assert result.status == "ok", result.error
    cells = nbformat.read(result.output, as_version=4).cells
    text = "".join(o.get("text", "") for c in cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert "FALLBACK: no Prometheus or Alertmanager here" in text
    assert "by canary-guard: delete challenger: canary guard: CanaryErrorHigh: the challenger's MAE" in text
