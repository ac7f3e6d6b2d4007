"""Governance (notebook 10): the lineage graph and its queries, the audit check, reproduce() and the model card."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from types import SimpleNamespace

import mlflow
import pandas as pd
import pytest
import yaml

from mlops_helpers import catchup, data, pipeline, plots, workspace
from mlops_helpers.governance import __main__ as governance_cli
from mlops_helpers.governance import card, reproducibility
from mlops_helpers.governance.lineage import (
    KINDS,
    Lineage,
    Node,
    committed_dvc_md5,
    dataset_path,
    deployment_records,
    lineage,
)
from mlops_helpers.governance.lineage import md5 as lineage_md5
from mlops_helpers.names import AUDIT_TAG_PREFIX, DATA_SHA_TAG, DVC_MD5_TAG, DVC_PATH_TAG, DVC_REPO_TAG, DVC_REV_TAG
from mlops_helpers.names import MODEL_NAME as NAME
from mlops_helpers.registry import Registry, replay


# ----------------------------------------------------------------------------------------------- pure: the graph
def _graph() -> Lineage:
    g = Lineage("m")
    for node in [
        Node("file:a", "data file", "a.csv"),
        Node("dataset:t", "dataset", "train"),
        Node("run:r", "run", "run-1"),
        Node("model:m1", "logged model", "m-1"),
        Node("version:1", "version", "m v1", {"version": "1", "order": 1}),
        Node("version:2", "version", "m v2", {"version": "2", "order": 2}),
        Node("alias:champion", "alias", "@champion"),
        Node("deployment:x", "deployment", "service", {"rows": 5, "version": "1"}),
    ]:
        g.add(node)
    for source, target in [
        ("file:a", "dataset:t"),
        ("dataset:t", "run:r"),
        ("run:r", "model:m1"),
        ("model:m1", "version:1"),
        ("version:1", "alias:champion"),
        ("version:1", "deployment:x"),
    ]:
        g.link(source, target, "to")
    return g


def test_upstream_of_a_deployment_reaches_the_data_file_and_nothing_unrelated():
    g = _graph()
    up = [n.id for n in g.upstream("deployment:x")]
    assert up == ["file:a", "dataset:t", "run:r", "model:m1", "version:1"]
    assert "version:2" not in up and "alias:champion" not in up


def test_downstream_of_a_data_file_reaches_its_deployments():
    down = {n.id for n in _graph().downstream("file:a")}
    assert {"version:1", "alias:champion", "deployment:x"} <= down and "version:2" not in down


def test_find_filters_by_kind_and_attributes_and_rejects_unknown_kinds():
    g = _graph()
    assert [n.id for n in g.find("version")] == ["version:1", "version:2"]
    assert [n.id for n in g.find("version", version="2")] == ["version:2"]
    with pytest.raises(ValueError, match="unknown kind"):
        g.find("versions")
    with pytest.raises(KeyError, match="no node"):
        g.upstream("version:9")


def test_links_are_not_duplicated_and_mermaid_has_every_node_and_edge():
    g = _graph()
    g.link("file:a", "dataset:t", "to")
    assert len(g.edges) == 6
    text = g.to_mermaid()
    assert text.startswith("flowchart LR")
    assert text.count("-->") == 6 and text.count('["') == 8


def test_the_drawing_has_one_box_per_node_and_arrows_that_touch_them():
    from matplotlib.patches import FancyBboxPatch
    from matplotlib.text import Annotation

    g = _graph()
    ax = plots.lineage_graph(g).axes[0]
    where = plots.lineage_layout(g)
    boxes = [p for p in ax.patches if isinstance(p, FancyBboxPatch)]
    centres = sorted((round(b.get_x() + b.get_width() / 2, 9), round(b.get_y() + b.get_height() / 2, 9)) for b in boxes)
    assert centres == sorted((round(x, 9), round(y, 9)) for x, y in where.values())
    arrows = [t for t in ax.texts if isinstance(t, Annotation)]
    assert len(arrows) == len(g.edges)
    for edge, arrow in zip(g.edges, arrows, strict=True):  # from the right side of one box to the left of the next
        (x0, y0), (x1, y1) = where[edge.source], where[edge.target]
        assert arrow.xyann == pytest.approx((x0 + plots.BOX_WIDTH / 2, y0))
        assert arrow.xy == pytest.approx((x1 - plots.BOX_WIDTH / 2, y1))
        assert arrow.arrow_patch.shrinkA == arrow.arrow_patch.shrinkB == 0  # touching, not stopping short


def test_the_drawing_keeps_every_label_inside_its_box_and_readable():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    g = _graph()
    g.add(Node("deployment:long", "deployment", "governance-september [champion]: 167 rows", {"version": "1"}))
    g.link("version:1", "deployment:long", "served")
    fig = plots.lineage_graph(g)
    ax, canvas = fig.axes[0], FigureCanvasAgg(fig)
    canvas.draw()  # lays the figure out: the extents below are the drawn ones
    renderer = canvas.get_renderer()
    boxes = [p.get_window_extent(renderer) for p in ax.patches]
    labels = [t for t in ax.texts if t.get_text() and t.get_bbox_patch() is None and t.get_fontweight() == "normal"]
    labels = [t for t in labels if t.get_fontsize() >= 9]  # the node labels (edge labels are smaller, on a patch)
    assert len(labels) == len(g.nodes)
    for label in labels:
        extent = label.get_window_extent(renderer)
        (box,) = [b for b in boxes if b.contains((extent.x0 + extent.x1) / 2, (extent.y0 + extent.y1) / 2)]
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1, label
    assert "167" in "".join(t.get_text() for t in labels)  # a long label is wrapped, not cut


def test_parse_param_gives_back_the_logged_types():
    assert [reproducibility.parse_param(v) for v in ("100", "0.1", "None", "gradient_boosting", "true")] == [
        100,
        0.1,
        None,
        "gradient_boosting",
        True,
    ]


# -------------------------------------------------------------------------------------- pure: the audit check
class FakeClient:
    """Just enough of MlflowClient for check_audit: a registered model's tags and aliases."""

    def __init__(self, events: list[dict], aliases: dict[str, str]) -> None:
        tags = {f"{AUDIT_TAG_PREFIX}{e['seq']:05d}": json.dumps(e) for e in events}
        self.model = SimpleNamespace(tags=tags, aliases=aliases)

    def get_registered_model(self, name):
        return self.model


def _event(seq, action, alias, version, previous):
    return {"seq": seq, "at": "", "by": "t", "action": action, "alias": alias, "version": version, "from": previous}


def test_replay_applies_sets_and_deletes_in_order():
    events = [_event(2, "delete", "challenger", None, "2"), _event(1, "set", "challenger", "2", None)]
    assert replay(events) == {}
    assert replay(events[1:]) == {"challenger": "2"}


def test_a_trail_that_explains_the_registry_passes():
    events = [_event(1, "set", "champion", "1", None), _event(2, "set", "champion", "2", "1")]
    check = Registry(NAME, FakeClient(events, {"champion": "2"})).check()
    assert check.ok and check.replayed == {"champion": "2"} and check.events == 2


def test_a_move_outside_the_tools_is_found():
    events = [_event(1, "set", "champion", "1", None)]
    check = Registry(NAME, FakeClient(events, {"champion": "2", "hotfix": "3"})).check()
    assert not check.ok
    assert [(f.alias, f.registry, f.trail) for f in check.unrecorded] == [("champion", "2", "1"), ("hotfix", "3", None)]


def test_a_gap_stays_in_the_history_after_the_registry_is_put_right():
    # champion moved by hand from 1 to 2, then put back to 1 with the tools: the event's "from" shows the gap
    events = [_event(1, "set", "champion", "1", None), _event(2, "set", "champion", "1", "2")]
    check = Registry(NAME, FakeClient(events, {"champion": "1"})).check()
    assert not check.unrecorded
    assert [(f.seq, f.registry, f.trail) for f in check.gaps] == [(2, "2", "1")]
    assert Registry(NAME, FakeClient(events, {"champion": "1"})).check(since=2).ok


# --------------------------------------------------------------------------------- pure: deployment records
def test_deployment_records_count_rows_per_log_version_and_variant(tmp_path):
    rows = [
        {"model": NAME, "version": "3", "time": "2026-01-01T00:00:00+00:00"},
        {"model": NAME, "version": "3", "time": "2026-01-01T00:00:05+00:00"},
        {"model": NAME, "version": "4", "variant": "canary", "time": "2026-01-01T00:00:07+00:00"},
        {"model": "another-model", "version": "3", "time": "2026-01-01T00:00:09+00:00"},
    ]
    (tmp_path / "predictions").mkdir()
    text = "".join(json.dumps(r) + "\n" for r in rows) + '{"model": "torn'
    (tmp_path / "predictions" / "service.jsonl").write_text(text)
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "integration-v4.jsonl").write_text(json.dumps({**rows[0], "version": "4"}) + "\n")
    table = deployment_records(NAME, tmp_path)
    got = {(r.log, r.version, r.variant): r.rows for r in table.itertuples()}
    assert got == {
        ("predictions/service.jsonl", "3", ""): 2,
        ("predictions/service.jsonl", "4", "canary"): 1,
        ("pipeline/integration-v4.jsonl", "4", ""): 1,
    }
    first = table[(table["version"] == "3")].iloc[0]
    assert (first["last"] - first["first"]).total_seconds() == 5


# ------------------------------------------------------------------------------- with a registry: one release
@pytest.fixture(scope="module")
def template(tmp_path_factory):
    """A workspace where the pipeline promoted a January-May model, built once and copied for each test."""
    root = tmp_path_factory.mktemp("template") / "workspace"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_WORKSPACE", str(root))
        ws = workspace.setup()
        batch = ws.path("batches", "jan-may.csv")
        data.source_batch("2011-01-01:2011-06-01").to_csv(batch, index=False)
        catchup.ensure_champion(ws)
        config = pipeline.PipelineConfig(data=batch, window=("2011-01-01", "2011-06-01"), integration_test=False)
        result = pipeline.run_pipeline(config, echo=lambda *_: None)
        assert result.promoted
    return root, result.version


@pytest.fixture
def release(template, tmp_path, monkeypatch):
    source, version = template
    root = tmp_path / "workspace"
    shutil.copytree(source, root)
    monkeypatch.setenv("COURSE_WORKSPACE", str(root))
    workspace.setup()
    return SimpleNamespace(root=root, source=source, version=version, client=mlflow.MlflowClient())


def test_lineage_follows_a_version_from_its_data_file_to_its_deployment(release):
    log = release.root / "predictions" / "svc.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(json.dumps({"model": NAME, "version": release.version, "time": pd.Timestamp.now("UTC").isoformat()}))
    g = lineage(NAME, release.version, root=release.root)
    assert {n.kind for n in g.nodes.values()} == set(KINDS) - {"data version"}  # no DVC here (notebook 11)
    (file_node,) = g.find("data file")
    assert file_node.attrs["verified"] and file_node.attrs["sha256"] == data.sha256(file_node.attrs["path"])
    (deployment,) = g.find("deployment")
    assert deployment.attrs["rows"] == 1
    upstream_kinds = [n.kind for n in g.upstream(deployment)]
    assert upstream_kinds == ["data file", "dataset", "dataset", "run", "logged model", "version"]
    aliases = {n.attrs["alias"]: n.attrs["now"] for n in g.find("alias")}
    assert aliases["champion"] == release.version and aliases["challenger"] is None


def test_a_prediction_logged_before_the_version_existed_is_not_evidence(release):
    log = release.root / "predictions" / "old.jsonl"
    log.parent.mkdir(parents=True, exist_ok=True)
    old = {"model": NAME, "version": release.version, "time": "2001-01-01T00:00:00+00:00"}
    log.write_text(json.dumps(old) + "\n")
    assert not lineage(NAME, release.version, root=release.root).find("deployment")
    with log.open("a") as handle:  # the same file, now with a row answered after the version was registered
        handle.write(json.dumps({**old, "time": pd.Timestamp.now("UTC").isoformat()}) + "\n")
    (deployment,) = lineage(NAME, release.version, root=release.root).find("deployment")
    assert deployment.attrs["rows"] == 1


def test_reproduce_rebuilds_identical_predictions(release):
    result = reproducibility.reproduce(NAME, release.version)
    assert result.identical and result.max_abs_diff == 0.0
    assert result.family == "gradient_boosting" and result.params == {
        "n_estimators": 100,
        "max_depth": 5,
        "learning_rate": 0.1,
    }
    assert result.rows_compared > 3000


def test_reproduce_refuses_when_the_data_file_changed(release):
    run = release.client.get_run(release.client.get_model_version(NAME, release.version).run_id)
    path = dataset_path(run.inputs.dataset_inputs[0].dataset)
    original = path.read_bytes()
    try:
        raw = pd.read_csv(path)
        raw.loc[raw.index[10], "temp"] = 0.5
        raw.to_csv(path, index=False)
        with pytest.raises(reproducibility.DataChanged, match="has changed"):
            reproducibility.reproduce(NAME, release.version)
        # without the file's recorded sha256, the MLflow digest of the training rows still catches it
        release.client.delete_tag(run.info.run_id, DATA_SHA_TAG)
        with pytest.raises(reproducibility.DataChanged, match="digest"):
            reproducibility.reproduce(NAME, release.version)
    finally:
        path.write_bytes(original)


def test_check_audit_finds_a_direct_alias_move_and_passes_after_the_tools_put_it_back(release):
    client, before = release.client, Registry(NAME).check()
    since = before.events
    assert not before.unrecorded
    versions = sorted(int(v.version) for v in client.search_model_versions(f"name = '{NAME}'"))
    other = str(versions[0])
    client.set_registered_model_alias(NAME, "champion", other)
    found = Registry(NAME).check(since=since)
    assert [(f.alias, f.registry, f.trail) for f in found.unrecorded] == [("champion", other, release.version)]
    assert governance_cli.main(["audit", "--since", str(since)]) == 1  # the CLI a nightly job runs fails
    Registry(NAME).move("champion", release.version, "revert an unrecorded move")
    after = Registry(NAME).check(since=since)
    assert not after.unrecorded and len(after.gaps) == 1
    assert governance_cli.main(["audit", "--since", str(since)]) == 0
    assert governance_cli.main(["audit", "--since", str(since), "--strict"]) == 1  # the gap stays in the history


def test_the_model_card_is_computed_from_the_registry_and_the_data(release):
    client = release.client
    client.set_registered_model_tag(NAME, card.OWNER_TAG, "team-bikes@example.org")
    client.set_registered_model_tag(NAME, card.INTENDED_USE_TAG, "Hourly demand for rebalancing.")
    text = card.model_card(NAME, "champion")
    run = client.get_run(client.get_model_version(NAME, release.version).run_id)
    for part in ("## Intended use", "## Owners", "## Training data", "## Metrics", "## Drift", "## Limits"):
        assert part in text
    assert "team-bikes@example.org" in text and "Hourly demand for rebalancing." in text
    assert f"{run.data.metrics['holdout_rmse']:.2f}".rstrip("0") in text
    assert "| 2011-07 |" in text and "| 2011-05 |" not in text  # the months after the batch, not before
    model = mlflow.pyfunc.load_model(f"models:/{NAME}/{release.version}")
    july = card.monthly_rmse(model, data.window(data.load_bikes(), "2011-07-01", "2011-08-01"))
    assert f"{july.loc['2011-07', 'rmse']:.2f}".rstrip("0") in text
    path = card.save_model_card(NAME, release.version, text, root=release.root)
    assert path.read_text() == text
    assert client.get_model_version(NAME, release.version).tags["model_card"].endswith("model_card.md")
    client.set_model_version_tag(NAME, release.version, card.OWNER_TAG, "on-call@example.org")
    try:  # a version's own owner wins over the registered model's
        owned = card.model_card(NAME, release.version)
    finally:
        client.delete_model_version_tag(NAME, release.version, card.OWNER_TAG)
    assert "- accountable: on-call@example.org\n" in owned and "team-bikes@example.org" not in owned


def test_markdown_tables_align_numbers_and_escape_pipes():
    frame = pd.DataFrame({"rows": [3, 10], "rmse": [1.234, None], "ok": [True, False], "why": ["a|b", None]})
    text = card.markdown_table(frame.rename_axis("k"), digits=1)
    assert text.splitlines() == [
        "| k | rows | rmse | ok | why |",
        "|---:|---:|---:|:---|:---|",
        "| 0 | 3 | 1.2 | True | a\\|b |",
        "| 1 | 10 |  | False |  |",
    ]


# ------------------------------------------------------------------------------- a run on DVC-versioned data (11)
def _git(repo, *args):
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
           "PATH": os.environ["PATH"]}  # fmt: skip
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout.strip()


def test_lineage_puts_the_dvc_version_a_run_recorded_between_the_file_and_its_dataset(tmp_workspace, tmp_path):
    from sklearn.linear_model import LinearRegression

    repo = tmp_path / "repo"
    (repo / "data").mkdir(parents=True)
    table = pd.DataFrame({"x": [1.0, 2.0, 3.0], "bikers": [2.0, 4.0, 6.0]})
    table.to_csv(repo / "data" / "prepared.csv", index=False)
    recorded = lineage_md5(repo / "data" / "prepared.csv")
    assert recorded == hashlib.md5((repo / "data" / "prepared.csv").read_bytes()).hexdigest()
    lock = {"schema": "2.0", "stages": {"prepare": {"cmd": "python prepare.py",
            "outs": [{"path": "data/prepared.csv", "hash": "md5", "md5": recorded}]}}}  # fmt: skip
    (repo / "dvc.lock").write_text(yaml.safe_dump(lock))
    _git(repo, "init", "--quiet")
    _git(repo, "add", "dvc.lock")
    _git(repo, "commit", "--quiet", "--message", "v1")
    rev = _git(repo, "rev-parse", "HEAD")
    assert committed_dvc_md5(repo, rev, "data/prepared.csv") == recorded
    assert committed_dvc_md5(repo, rev, "data/other.csv") is None

    workspace.setup(experiment="dvc-lineage")
    with mlflow.start_run():
        mlflow.set_tags({DVC_REPO_TAG: str(repo), DVC_REV_TAG: rev, DVC_PATH_TAG: "data/prepared.csv",
                         DVC_MD5_TAG: recorded})  # fmt: skip
        source = str(repo / "data" / "prepared.csv")
        mlflow.log_input(mlflow.data.from_pandas(table, source=source, name="prepared", targets="bikers"), "training")
        info = mlflow.sklearn.log_model(LinearRegression().fit(table[["x"]], table["bikers"]), name="model")
    version = mlflow.register_model(info.model_uri, "dvc-model").version
    g = lineage("dvc-model", version)
    (file_node,), (data_version,) = g.find("data file"), g.find("data version")
    assert data_version.attrs["committed"] and file_node.attrs["verified"]
    assert [n.kind for n in g.upstream(f"version:{version}")] == [
        "data file", "data version", "dataset", "run", "logged model"]  # fmt: skip
    assert [e.relation for e in g.edges if e.source == file_node.id] == ["tracked as"]

    table.assign(x=table["x"] + 1).to_csv(repo / "data" / "prepared.csv", index=False)  # the workspace moves on
    (file_now,) = lineage("dvc-model", version).find("data file")
    assert not file_now.attrs["verified"] and "CHANGED" in lineage("dvc-model", version).table()["facts"][0]
    with mlflow.start_run():  # a tag that the commit does not back
        mlflow.set_tags({DVC_REPO_TAG: str(repo), DVC_REV_TAG: rev, DVC_PATH_TAG: "data/prepared.csv",
                         DVC_MD5_TAG: "0" * 32})  # fmt: skip
        mlflow.log_input(mlflow.data.from_pandas(table, source=source, name="prepared", targets="bikers"), "training")
        info = mlflow.sklearn.log_model(LinearRegression().fit(table[["x"]], table["bikers"]), name="model")
    other = mlflow.register_model(info.model_uri, "dvc-model").version
    (claimed,) = lineage("dvc-model", other).find("data version")
    assert not claimed.attrs["committed"] and claimed.attrs["committed_md5"] == recorded
