"""Feast's own environment (scripts/feast_env.py): why it has one, and that its lock says so."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("feast_env", ROOT / "scripts" / "feast_env.py")
feast_env = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(feast_env)


def _pins(path: Path) -> dict[str, str]:
    found = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", path.read_text(), flags=re.M)
    return {re.sub(r"[-_.]+", "-", name.lower()): version for name, version in found}


def test_the_feast_lock_pins_what_feast_needs_and_the_course_lock_cannot_give():
    feast, course = _pins(feast_env.FEAST_LOCK), _pins(ROOT / "requirements.lock")
    assert feast["feast"] == "0.67.0"
    assert int(feast["tenacity"].split(".")[0]) < 9 <= int(course["tenacity"].split(".")[0])
    minor = lambda version: tuple(int(p) for p in version.split(".")[:2])  # noqa: E731
    assert minor(feast["prometheus-client"]) < (0, 25) <= minor(course["prometheus-client"])
    assert "feast" not in course  # it is not in the course's environment


def test_the_feast_lock_holds_the_top_level_pins_and_shares_the_frames_libraries():
    feast, course = _pins(feast_env.FEAST_LOCK), _pins(ROOT / "requirements.lock")
    top = _pins(feast_env.FEAST_IN)
    assert all(feast[name] == version for name, version in top.items())
    assert feast["pandas"] == course["pandas"] and feast["numpy"] == course["numpy"]
    assert set(feast_env.NOT_INSTALLED) <= set(feast)  # what the venv leaves out is in the lock (else: stale list)


def test_the_catch_up_check_accepts_only_a_venv_built_from_todays_lock_with_this_python(tmp_path):
    import hashlib
    import sys

    import pytest

    from mlops_helpers import catchup

    venv = tmp_path / ".feast-venv"
    with pytest.raises(RuntimeError, match="make feast-venv"):
        catchup.ensure_feast_venv(venv)  # missing
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    marker = venv / ".feast-lock.sha256"
    marker.write_text(hashlib.sha256(feast_env.FEAST_LOCK.read_bytes() + sys.version.encode()).hexdigest())
    assert catchup.ensure_feast_venv(venv) == venv / "bin" / "python"  # the stamp scripts/feast_env.py writes
    marker.write_text(hashlib.sha256(b"an older lock" + sys.version.encode()).hexdigest())
    with pytest.raises(RuntimeError, match=r"older than feast/requirements\.lock"):
        catchup.ensure_feast_venv(venv)


def test_each_course_venv_has_its_own_feast_venv():
    """CI sets up a second Python's venv while the first one's notebooks run Feast: a shared venv would be rebuilt under
    them."""
    from mlops_helpers.environment import feast_venv

    assert feast_venv(ROOT / ".venv").name == ".feast-venv"
    assert feast_venv(ROOT / ".venv-3.13").name == ".feast-venv-3.13"
    assert feast_venv("/opt/conda/envs/mlops-course").name == ".feast-venv"  # conda: one per checkout
