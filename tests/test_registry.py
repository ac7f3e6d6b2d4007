"""The registry's lease and write-ahead moves: writers that overlap or crash lose nothing, and the audit check tells a
crash from a move made around the tools. Versions here point at no real model (nothing is loaded): fast."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import mlflow
import pytest

from mlops_helpers import registry as registry_module
from mlops_helpers import workspace
from mlops_helpers.names import LEASE_TAG
from mlops_helpers.registry import Holder, Lease, LeaseHeld, LeaseLost, Registry

NAME = "lease-demo"


@pytest.fixture(scope="module")
def template(tmp_path_factory, module_tracking_env):
    """A workspace with four versions (of no real model) and a champion, built once: migrating a new database
    takes seconds."""
    root = tmp_path_factory.mktemp("registry") / "workspace"
    ws = workspace.setup(root)
    client = mlflow.MlflowClient()
    client.create_registered_model(NAME)
    for _ in range(4):
        client.create_model_version(NAME, source=str(ws.root / "no-model"))
    Registry(NAME, client).move("champion", "1", "setup")
    return root


@pytest.fixture
def reg(template, tmp_path, monkeypatch):
    root = tmp_path / "workspace"
    shutil.copytree(template, root)
    monkeypatch.setenv("COURSE_WORKSPACE", str(root))
    workspace.setup()
    return Registry(NAME)


def _writer(code: str, failpoints: str = "") -> subprocess.CompletedProcess:
    """Run registry code in another process (the workspace's database), optionally killed at a failpoint."""
    prelude = (
        "from mlops_helpers import workspace; from mlops_helpers.registry import Registry; "
        f"workspace.setup(); r = Registry({NAME!r}); "
    )
    env = {**os.environ, "MLOPS_FAILPOINTS": failpoints}
    return subprocess.run([sys.executable, "-c", prelude + code], env=env, capture_output=True, text=True, timeout=120)


def test_a_second_writer_waits_for_a_live_holder_and_is_told_who(reg):
    first = Lease(reg, "first writer").acquire()
    try:
        told = []
        with pytest.raises(LeaseHeld, match=r"being changed by .*first writer.*waited 1 s"):
            Lease(reg, "second writer", wait=1, echo=told.append).acquire()
        assert told and "first writer" in told[0]
        assert reg.holder().token == first.token
    finally:
        first.release()
    assert reg.holder() is None  # released: the tag is gone


def test_an_expired_lease_is_taken_over_and_its_changes_undone(reg):
    stalled = Lease(reg, "stalled writer", ttl=1.0).acquire()
    stalled._heartbeat.stop()  # a process paused for longer than its lease lives
    with registry_module._held_lock:
        registry_module._held[reg.key] = stalled
    reg.move("challenger", "2", "by the stalled writer")
    with registry_module._held_lock:
        registry_module._held.pop(reg.key)
    time.sleep(1.5)
    taker = Lease(reg, "next writer").acquire()
    try:
        assert any("expired" in line for line in taker.recovered)
        assert "challenger" not in reg.aliases()  # the stalled writer's change was undone
    finally:
        taker.release()
    with pytest.raises(LeaseLost, match="stalled for more than 1 s"):
        stalled.verify(reg.client.get_registered_model(NAME).tags)  # its next write would stop here


def test_a_crash_between_recording_and_moving_is_not_an_unrecorded_move(reg):
    done = _writer("r.move('champion', '3', 'killed mid-move')", "registry.after-alias=kill")
    assert done.returncode == -9
    assert reg.aliases()["champion"] == "3"  # the move happened, its record was never confirmed
    check = reg.check()
    assert check.ok and not check.unrecorded
    assert [(f.kind, f.alias, f.applied) for f in check.findings] == [("interrupted", "champion", True)]
    assert "crashed" in check.findings[0].message() and "Not a move around the tools" in check.findings[0].message()
    leftovers = reg.leftovers()
    assert any("is gone" in line for line in leftovers) and any("interrupted" not in line for line in leftovers)
    recovered = reg.recover("test")
    assert any("took over" in line for line in recovered)
    assert reg.aliases()["champion"] == "1"  # the crashed writer's unfinished move is undone
    assert reg.check().ok and not reg.check().findings and not reg.leftovers()
    settled = [e for e in reg.events() if e.get("state")]
    assert [(e["state"], e["applied"]) for e in settled] == [("interrupted", True)]


def test_a_crash_before_the_move_settles_as_not_applied(reg):
    assert _writer("r.move('champion', '3', 'killed before the move')", "registry.before-alias=kill").returncode == -9
    check = reg.check()
    assert reg.aliases()["champion"] == "1" and check.ok
    assert [(f.kind, f.applied) for f in check.findings] == [("interrupted", False)]
    reg.move("challenger", "2", "the next writer")  # any write recovers first
    assert reg.check().ok and not reg.check().findings
    assert reg.aliases() == {"champion": "1", "challenger": "2"}


def test_a_half_registration_of_a_crashed_writer_is_deleted(reg, tmp_path):
    info = mlflow.MlflowClient().get_model_version(NAME, "1")
    assert (
        _writer(f"r.register({info.source!r}, 'killed after registering')", "registry.after-register=kill").returncode
        == -9
    )
    assert reg.state()["versions"] == [1, 2, 3, 4, 5] and reg.aliases() == {"champion": "1"}
    recovered = reg.recover("test")
    assert any("deleted version 5" in line for line in recovered)
    assert reg.state()["versions"] == [1, 2, 3, 4]
    notes = [e for e in reg.events() if e["action"] == "recover"]
    assert [e["version"] for e in notes] == [None, "5"]  # the takeover, then the deletion, in the audit trail


def test_undo_puts_back_only_its_own_changes_and_leaves_others_alone(reg):
    with reg.lease("a pipeline run") as lease:
        reg.move("challenger", "2", "mine")
        reg.promote("2", "mine too")
        reg.client.set_registered_model_alias(NAME, "previous-champion", "4")  # someone else, meanwhile
        undone = lease.undo("refused")
    assert reg.aliases() == {"champion": "1", "previous-champion": "4"}
    assert any("previous-champion" in line and "left alone" in line for line in undone.left)
    assert any("@champion back on version 1" in line for line in undone.done)


def test_a_block_that_raises_undoes_its_changes(reg):
    with pytest.raises(RuntimeError, match="boom"), reg.lease("half a promotion"):
        reg.move("previous-champion", "1", "step 1")
        raise RuntimeError("boom")
    assert reg.aliases() == {"champion": "1"} and reg.holder() is None and reg.check().ok


def test_restore_puts_back_only_what_this_process_changed(reg):
    before = reg.state()
    reg.move("challenger", "2", "ours")
    reg.client.set_registered_model_alias(NAME, "hotfix", "3")  # not through the tools: not ours
    left = reg.restore(before, "restored")
    assert reg.aliases() == {"champion": "1", "hotfix": "3"}
    assert left == ["@hotfix was changed by another writer: left on version 3"]


def test_a_lease_tag_nobody_can_read_counts_as_expired(reg):
    reg.client.set_registered_model_tag(NAME, LEASE_TAG, "not json")
    holder = Holder.parse("not json")
    assert holder is not None and holder.stale() and "unreadable" in holder.why
    reg.move("challenger", "2", "after garbage")
    assert reg.aliases()["challenger"] == "2"
    assert json.loads(reg.client.get_registered_model(NAME).tags.get(LEASE_TAG, "{}")) == {}


def test_the_lease_of_a_brand_new_model_does_not_leave_an_empty_model(reg):
    fresh = Registry("never-registered")
    with fresh.lease("a refused first run"):
        assert fresh.exists()
    assert not fresh.exists()


def test_a_pending_move_whose_lease_tag_was_deleted_by_hand_is_still_settled(reg):
    assert _writer("r.move('champion', '3', 'killed mid-move')", "registry.after-alias=kill").returncode == -9
    reg.client.delete_registered_model_tag(NAME, LEASE_TAG)  # someone "cleaned up" the crashed writer's lease
    assert [line for line in reg.leftovers() if "recorded ahead but never confirmed" in line]
    reg.move("challenger", "2", "the next writer")
    assert reg.aliases() == {"champion": "1", "challenger": "2"}
    assert reg.check().ok and not reg.check().findings and not reg.leftovers()


def test_a_recovery_killed_half_way_is_finished_by_the_next_not_reverted(reg):
    assert _writer("r.promote('3', 'killed after moving champion')", "registry.after-alias=kill@2").returncode == -9
    assert reg.aliases() == {"champion": "3", "previous-champion": "1"}
    assert _writer("r.recover('killed half way')", "registry.after-alias=kill@1").returncode == -9
    assert reg.aliases() == {"champion": "3"}  # the recovery removed previous-champion, then died
    reg.recover("the next writer")
    assert reg.aliases() == {"champion": "1"} and reg.check().ok and not reg.leftovers()


def test_failpoints_parse_and_refuse_a_malformed_spec(monkeypatch):
    from mlops_helpers import failpoints

    spec = "registry.after-alias=kill@2; pipeline.before-evaluate=sleep:0.01;x=wait:/tmp/go"
    assert failpoints.parse(spec) == {
        "registry.after-alias": "kill@2",
        "pipeline.before-evaluate": "sleep:0.01",
        "x": "wait:/tmp/go",
    }
    with pytest.raises(ValueError, match="is not NAME=kill"):
        failpoints.parse("registry.after-alias=explode")
    monkeypatch.setenv(failpoints.ENV_VAR, "pipeline.before-evaluate=sleep:0.01")
    failpoints.failpoint("pipeline.before-evaluate")  # sleeps, returns
    failpoints.failpoint("not.named")  # nothing
