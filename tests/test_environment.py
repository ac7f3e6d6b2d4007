"""One environment: requirements.in, requirements.lock and environment.yml agree, and this venv is that environment.

The same lock serves Python 3.11, 3.12 and 3.13 (make lock checks it resolves identically on each); these checks run
on whichever of them runs the tests (CI: 3.11 and the newest).
"""

from __future__ import annotations

import re
import sys

import pytest

from mlops_helpers import REPO_ROOT, environment
from mlops_helpers.environment import normalise, read_pins

ENV_YML = REPO_ROOT / "environment.yml"


def _environment_yml_pins() -> dict[str, str]:
    pins = {}
    for line in ENV_YML.read_text().splitlines():
        match = re.match(r"^\s*-\s+([A-Za-z0-9_.\-\[\]]+)\s*(==?)\s*([^\s#]+)", line)
        if match:
            name, _, version = match.groups()
            pins[normalise(name.split("[")[0])] = version
    return pins


def test_every_top_level_pin_is_in_the_lock_with_the_same_version():
    top, lock = read_pins(environment.REQUIREMENTS_IN), read_pins(environment.REQUIREMENTS_LOCK)
    assert len(top) >= 20
    mismatched = {name: (version, lock.get(name)) for name, version in top.items() if lock.get(name) != version}
    assert not mismatched, f"requirements.in vs requirements.lock (run make lock): {mismatched}"


def test_environment_yml_agrees_with_the_pins():
    conda = _environment_yml_pins()
    lock = read_pins(environment.REQUIREMENTS_LOCK)
    assert "python" not in conda, "environment.yml names a range of Pythons (tests/test_setup.py checks it)"
    shared = set(conda) & set(lock)
    assert len(shared) >= 20, "environment.yml should name the course's top-level packages"
    mismatched = {name: (conda[name], lock[name]) for name in shared if conda[name] != lock[name]}
    assert not mismatched, f"environment.yml vs requirements.lock: {mismatched}"
    assert set(read_pins(environment.REQUIREMENTS_IN)) <= set(conda), "a top-level pin is missing in environment.yml"


def test_lock_pins_every_package_exactly():
    lines = [ln for ln in environment.REQUIREMENTS_LOCK.read_text().splitlines() if ln and not ln.startswith("#")]
    loose = [ln for ln in lines if "==" not in ln]
    assert not loose, f"unpinned lines in requirements.lock: {loose}"
    assert len(lines) > 200


def test_the_running_environment_is_the_pinned_one():
    wrong = [r for r in environment.environment_report() if not r["ok"]]
    assert not wrong, f"installed versions differ from requirements.in (run make setup): {wrong}"


def test_known_traps_stay_pinned_away():
    lock = read_pins(environment.REQUIREMENTS_LOCK)
    major_minor = lambda v: tuple(int(p) for p in v.split(".")[:2])  # noqa: E731
    assert major_minor(lock["pandas"]) < (3, 1), "evidently 0.7.23 does not import on pandas >= 3.1"
    assert major_minor(lock["sqlalchemy"]) < (2, 1), "mlflow 3.17 warns on every registry call with sqlalchemy 2.1"


def test_model_requirements_come_from_the_lock():
    reqs = environment.model_requirements()
    lock = read_pins(environment.REQUIREMENTS_LOCK)
    assert all(lock[normalise(r.split("==")[0])] == r.split("==")[1] for r in reqs)
    with pytest.raises(KeyError, match="make lock"):
        environment.model_requirements(("no-such-package",))


def test_the_shipped_model_requirements_agree_with_the_lock():
    """``mlops_helpers/model-requirements.txt`` (package data) is what the lock pins: ``make lock`` rewrites it."""
    shipped = environment.model_requirements()
    assert shipped == environment.model_requirements(lock=environment.REQUIREMENTS_LOCK)
    assert [r.split("==")[0] for r in shipped] == list(environment.MODEL_PACKAGES)
    with pytest.raises(KeyError, match="pass lock="):
        environment.model_requirements(("kfp",))


def test_model_requirements_work_from_an_installed_package_in_any_directory(tmp_path):
    """The bug of the component image: installed (not editable) and run from elsewhere, the package has no
    requirements.lock beside it; the model's pins must come from its own data."""
    import subprocess
    import sys

    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    # As the image's Dockerfile does: copy the sources, build the wheel (setuptools from pip's cache or the index),
    # install it without dependencies. (A copy: building in the repository would leave a build/ folder there.)
    import shutil

    source = tmp_path / "source"
    shutil.copytree(REPO_ROOT / "mlops_helpers", source / "mlops_helpers", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    done = subprocess.run([*install, "--target", str(target), str(source)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert not (target / "requirements.lock").exists()
    code = "import mlops_helpers as m, mlops_helpers.environment as e; print(m.__file__); print(e.model_requirements())"
    run = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r}); {code}"],
        cwd=elsewhere, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    where, pins = run.stdout.splitlines()
    assert where.startswith(str(target)) and pins == repr(environment.model_requirements())


def test_this_python_is_a_supported_one():
    assert sys.version_info[:2] in environment.SUPPORTED_PYTHONS, "make setup builds the venv with 3.11, 3.12 or 3.13"
