"""`make setup`'s choice of Python (scripts/find_python.sh) and uv's index options (scripts/uv_index_args.py).

The interpreters here are fakes (shell scripts that print a version), on a PATH that holds nothing else, so the tests
say what the script does on a learner's machine whatever this one has installed.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from mlops_helpers import REPO_ROOT, environment

FIND_PYTHON = REPO_ROOT / "scripts" / "find_python.sh"
BASH = shutil.which("bash")


@pytest.fixture
def machine(tmp_path):
    """A bare machine: ``add(folder, name, version)`` installs a fake interpreter; ``run(*args)`` runs the script."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for tool in ("ls", "sort", "sed", "cat"):
        (tools / tool).symlink_to(shutil.which(tool))
    path_bin, pyenv = tmp_path / "bin", tmp_path / "pyenv"

    def add(folder: Path, name: str, version: str | None) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        exe = folder / name
        # version None: a pyenv shim that refuses because the version is not selected
        body = f"echo {version}" if version else f'echo "pyenv: {name}: command not found" >&2; exit 127'
        exe.write_text(f"#!/bin/sh\n{body}\n")
        exe.chmod(0o755)
        return exe

    def run(*args: str) -> subprocess.CompletedProcess:
        env = {"PATH": f"{tmp_path / 'shims'}:{path_bin}:{tools}", "HOME": str(tmp_path), "PYENV_ROOT": str(pyenv)}
        return subprocess.run([BASH, str(FIND_PYTHON), *args], env=env, capture_output=True, text=True)

    return SimpleNamespace(add=add, run=run, bin=path_bin, pyenv=pyenv, shims=tmp_path / "shims")


def test_the_newest_supported_python_wins_on_path_or_in_pyenv(machine):
    machine.add(machine.bin, "python3.12", "3.12.3")
    machine.add(machine.bin, "python3", "3.11.9")
    newest = machine.add(machine.pyenv / "versions" / "3.13.1" / "bin", "python3.13", "3.13.1")
    machine.add(machine.pyenv / "versions" / "3.13.0" / "bin", "python3.13", "3.13.0")
    done = machine.run()
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(newest)
    assert "Python 3.13.1 at" in done.stderr  # says which


def test_a_refusing_pyenv_shim_is_passed_over_for_the_interpreter_it_hides(machine):
    machine.add(machine.shims, "python3.13", None)
    hidden = machine.add(machine.pyenv / "versions" / "3.13.0" / "bin", "python3.13", "3.13.0")
    done = machine.run()
    assert done.stdout.strip() == str(hidden)
    named = machine.run("python3.13")  # make setup PYTHON=python3.13 finds it too
    assert named.returncode == 0 and named.stdout.strip() == str(hidden)


def test_only_python3_of_a_supported_version(machine):
    python3 = machine.add(machine.bin, "python3", "3.12.1")
    assert machine.run().stdout.strip() == str(python3)


def test_a_minor_version_can_be_asked_for(machine):
    machine.add(machine.bin, "python3.13", "3.13.0")
    old = machine.add(machine.bin, "python3.11", "3.11.7")
    assert machine.run("3.11").stdout.strip() == str(old)


@pytest.mark.parametrize(
    ("installed", "reason"),
    [
        ({}, None),
        ({"python3.11": "3.11.2"}, "too old: the pinned packages need 3.11.5 or newer"),
        ({"python3.10": "3.10.12", "python3": "3.10.12"}, None),
        ({"python3": "3.14.0"}, None),
    ],
    ids=["nothing", "debian-12-python", "3.10", "3.14"],
)
def test_no_supported_python_says_so_and_how_to_get_one(machine, installed, reason):
    for name, version in installed.items():
        machine.add(machine.bin, name, version)
    done = machine.run()
    assert done.returncode == 1 and done.stdout == ""
    assert "No Python 3.11, 3.12 or 3.13 found" in done.stderr
    assert "pyenv install 3.13" in done.stderr and "make setup PYTHON=" in done.stderr
    if reason:
        assert reason in done.stderr


@pytest.mark.parametrize(("version", "ok"), [("3.13.0", True), ("3.11.5", True), ("3.11.4", False), ("3.14.0", False)])
def test_a_named_interpreter_is_checked(machine, version, ok):
    exe = machine.add(machine.bin, "mypython", version)
    done = machine.run(str(exe))
    assert (done.returncode == 0) is ok, done.stderr
    assert done.stdout.strip() == (str(exe) if ok else "")


def test_the_supported_versions_agree_everywhere():
    supported = [f"{major}.{minor}" for major, minor in environment.SUPPORTED_PYTHONS]
    script = re.search(r"^SUPPORTED=\(([^)]*)\)", FIND_PYTHON.read_text(), flags=re.M).group(1).split()
    assert script == supported[::-1], "scripts/find_python.sh tries the newest first"
    from packaging.specifiers import SpecifierSet

    pyproject = re.search(r'^requires-python = "([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), flags=re.M)
    conda = re.search(r"^\s*-\s+python\s*([<>=!].*)$", (REPO_ROOT / "environment.yml").read_text(), flags=re.M)
    for spec in (SpecifierSet(pyproject.group(1)), SpecifierSet(conda.group(1).strip())):
        assert all(f"{v}.9" in spec for v in supported)
        assert not {"3.10.14", "3.14.0"} & set(spec.filter(["3.10.14", "3.14.0"]))
    assert "3.11.4" not in SpecifierSet(conda.group(1).strip()), "environment.yml: 3.11.5 at least (soupsieve)"


def _uv_index_args():
    spec = importlib.util.spec_from_file_location("uv_index_args", REPO_ROOT / "scripts" / "uv_index_args.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_uv_gets_pips_indexes():
    module = _uv_index_args()
    listing = "\n".join(
        [
            ":env:.find-links='/opt/wheels'",
            "global.extra-index-url='file:///a/simple file:///b/simple'",
            "global.find-links='/elsewhere'",
            "global.cert='/etc/ssl/certs/ca-certificates.crt'",
            "install.index-url='https://mirror.example/simple'",
        ]
    )
    args = module.uv_args(module.pip_settings(listing))
    assert args == [
        "--index-url",
        "https://mirror.example/simple",
        "--extra-index-url",
        "file:///a/simple",
        "--extra-index-url",
        "file:///b/simple",
        "--find-links",
        "/opt/wheels",  # the environment variable wins over pip.conf, as in pip
        "--index-strategy",
        "unsafe-best-match",
    ]
    assert module.uv_args(module.pip_settings("")) == []  # no settings: uv's defaults (PyPI)
