"""The instructor guide and the shared set-ups (issue 16): the agendas' times cannot rot; the set-ups hang together.

Every agenda row's *read* and *exercises* minutes are what scripts/notebook_times.py computes, its *runs* seconds are
the README's in-order `make course` table, and every block and total follows the rule the guide states.
"""

from __future__ import annotations

import importlib.util
import json
import math
import re

import pytest

from mlops_helpers import course
from mlops_helpers.environment import SUPPORTED_PYTHONS

ROOT = course.REPO_ROOT
GUIDE = ROOT / "docs" / "instructor-guide.md"
AGENDA_HEADER = "| notebook | mode | read (min) | exercises (min) | runs (s) | block (min) |"


def notebook_times():
    spec = importlib.util.spec_from_file_location("notebook_times", ROOT / "scripts" / "notebook_times.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_run_seconds() -> dict[str, float]:
    """``{"01": 27.1, ...}`` from the README's in-order `make course` table."""
    found = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        match = re.fullmatch(r"(\d\d)_\w+\.ipynb\s+ok\s+([\d.]+)", line.strip())
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def agendas() -> dict[str, list[list[str]]]:
    """Each agenda table of the guide, by the heading above it: its rows as lists of cells (the total row last)."""
    tables: dict[str, list[list[str]]] = {}
    heading, rows = "", None
    for line in GUIDE.read_text().splitlines():
        if line.startswith("#"):
            heading = line.lstrip("# ").strip()
        elif line.strip() == AGENDA_HEADER:
            rows = tables.setdefault(heading, [])
        elif rows is not None and line.startswith("|"):
            if not line.startswith("|---"):
                rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        else:
            rows = None
    return tables


def test_the_guide_has_a_one_day_and_a_two_day_agenda():
    names = list(agendas())
    assert any(name.startswith("One-day") for name in names), names
    assert sum(name.startswith("Day ") for name in names) == 2, names


@pytest.mark.parametrize("heading", sorted(agendas()))
def test_agenda_times_are_the_measured_ones(heading):
    times, runs = notebook_times(), readme_run_seconds()
    paths = {p.name[:2]: p for p in course.notebooks()}
    *rows, total = agendas()[heading]
    assert total[0] == "**total**", f"{heading}: the last row must be the total"
    blocks = 0
    for name, mode, read, exercises, seconds, block in rows:
        number = name[:2]
        want_read, want_exercises = times.minutes(paths[number])
        assert (int(read), int(exercises)) == (want_read, want_exercises), (
            f"{heading}, {name}: read/exercises {read}/{exercises} min, but scripts/notebook_times.py gives "
            f"{want_read}/{want_exercises}"
        )
        assert float(seconds) == runs[number], f"{heading}, {name}: runs {seconds} s, the README's table {runs[number]}"
        assert mode in {"hands-on", "read"}, f"{heading}, {name}: mode {mode!r}"
        want_block = want_read + math.ceil(runs[number] / 60) + (want_exercises if mode == "hands-on" else 0)
        assert int(block) == want_block, f"{heading}, {name}: block {block} min, by the guide's rule {want_block}"
        blocks += want_block
    assert total[-1] == f"**{blocks}**", f"{heading}: total {total[-1]}, the blocks add up to {blocks}"


def test_the_readme_links_the_guide_and_still_opens_with_the_two_commands():
    readme = (ROOT / "README.md").read_text()
    assert "(docs/instructor-guide.md)" in readme
    assert "## Teaching this course" in readme
    first_screen = "\n".join(readme.splitlines()[:30])
    assert "make course" in first_screen and "make test" in first_screen


def test_the_dev_container_runs_the_course_set_up():
    config = json.loads((ROOT / ".devcontainer" / "devcontainer.json").read_text())
    assert "python:1-3.11" in config["image"]
    script = ROOT / config["postCreateCommand"].split()[-1]
    assert script.stat().st_mode & 0o111, f"{script} is not executable"
    text = script.read_text()
    assert "make system-deps" in text and "make setup" in text
    assert {str(p) for p in config["forwardPorts"]} <= set(config["portsAttributes"]), "every forwarded port labelled"
    assert all(attrs.get("label") for attrs in config["portsAttributes"].values())
    assert config["containerEnv"]["MLFLOW_DISABLE_TELEMETRY"] == "true"


def test_binder_installs_the_pinned_venv_and_shows_its_kernel():
    binder = ROOT / "binder"
    version = (binder / "runtime.txt").read_text().strip().removeprefix("python-")
    assert version in {f"{major}.{minor}" for major, minor in SUPPORTED_PYTHONS}
    assert {"prometheus", "prometheus-alertmanager"} <= set((binder / "apt.txt").read_text().split())
    for name in ("postBuild", "start"):
        assert (binder / name).stat().st_mode & 0o111, f"binder/{name} is not executable"
    assert "make setup" in (binder / "postBuild").read_text()
    start = (binder / "start").read_text()
    assert "JUPYTER_PATH" in start and start.rstrip().endswith('exec "$@"'), "repo2docker's start must end exec"


def test_the_wheelhouse_is_git_ignored_and_used_by_setup():
    assert "wheelhouse/" in (ROOT / ".gitignore").read_text().split()
    assert re.search(r"^wheelhouse: ", (ROOT / "Makefile").read_text(), re.MULTILINE)
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    assert "--no-index" in setup and ".complete" in setup
