"""The learner's lab (scripts/lab.py, `make lab`): a copy of the notebooks that the repository never sees (issue 16).

The browser test (tests/test_browser.py) runs the lab for real; these check the folder logic and the commands.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("course_lab", REPO / "scripts" / "lab.py")
lab = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(lab)


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "course-notebooks"
    folder.mkdir()
    for name in ("00_a.ipynb", "01_b.ipynb"):
        (folder / name).write_text(json.dumps({"course": name}))
    (folder / "scratch.ipynb").write_text("{}")  # not a course notebook (the runner's glob)
    return folder


def test_first_use_copies_the_course_notebooks_and_links_the_workspace(tmp_path, source):
    root, workspace = tmp_path / "lab", tmp_path / "workspace"
    copied = lab.prepare(root, workspace=workspace, source=source)
    assert copied == ["00_a.ipynb", "01_b.ipynb"]
    assert sorted(p.name for p in (root / "notebooks").iterdir()) == copied
    link = root / "workspace"
    assert link.is_symlink() and link.resolve() == workspace.resolve()
    (workspace / "reports").mkdir()
    (workspace / "reports" / "r.html").write_text("<html/>")
    assert (link / "reports" / "r.html").read_text() == "<html/>"  # what the lab's file browser opens


def test_the_learner_copy_is_never_overwritten_and_new_notebooks_are_added(tmp_path, source):
    root = tmp_path / "lab"
    lab.prepare(root, workspace=tmp_path / "ws", source=source)
    mine = root / "notebooks" / "01_b.ipynb"
    mine.write_text("my work")
    (source / "02_c.ipynb").write_text("{}")  # a notebook the course added later (git pull)
    assert lab.prepare(root, workspace=tmp_path / "ws", source=source) == ["02_c.ipynb"]
    assert mine.read_text() == "my work"


def test_reset_backs_up_and_copies_afresh_only_what_is_named(tmp_path, source):
    root = tmp_path / "lab"
    lab.prepare(root, workspace=tmp_path / "ws", source=source)
    for name in ("00_a.ipynb", "01_b.ipynb"):
        (root / "notebooks" / name).write_text(f"my {name}")
    backup = lab.reset(["01"], lab=root, source=source)
    assert (backup / "01_b.ipynb").read_text() == "my 01_b.ipynb"
    assert json.loads((root / "notebooks" / "01_b.ipynb").read_text()) == {"course": "01_b.ipynb"}
    assert (root / "notebooks" / "00_a.ipynb").read_text() == "my 00_a.ipynb"
    with pytest.raises(SystemExit):
        lab.reset(["99"], lab=root, source=source)


def test_the_lab_command_serves_the_lab_folder_on_loopback_without_news(tmp_path):
    root = tmp_path / "lab"
    lab.prepare(root, workspace=tmp_path / "ws", source=tmp_path)
    command = lab.lab_command(root, port=8899, open_browser=False)
    assert "--ip=127.0.0.1" in command and f"--ServerApp.root_dir={root}" in command and "--port=8899" in command
    assert not any(part.startswith("--notebook-dir") for part in command)  # the repo's notebooks/ is never served
    overrides = json.loads((root / ".settings" / "overrides.json").read_text())
    # The news prompt is asked while fetchNews is "none": "false" stops it (the browser test sees it gone).
    assert overrides["@jupyterlab/apputils-extension:notification"]["fetchNews"] == "false"
    assert f"--LabApp.app_settings_dir={root / '.settings'}" in command
    assert lab.lab_env(tmp_path / "ws")["COURSE_WORKSPACE"] == str((tmp_path / "ws").resolve())


def test_the_lab_folder_is_git_ignored():
    ignored = subprocess.run(["git", "check-ignore", "-q", "lab/notebooks/01_x.ipynb"], cwd=REPO, check=False)
    assert ignored.returncode == 0


def test_make_mlflow_ui_can_show_notebook_02s_server_database():
    # Item 3: notebook 02's server writes <workspace>/server/mlflow.db; 02 tells the learner this command.
    dry = subprocess.run(
        ["make", "-n", "mlflow-ui", "TRACKING=workspace/server", "STAMP=Makefile", "NANNYML_STAMP=Makefile"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert f"sqlite:///{REPO}/workspace/server/mlflow.db" in dry
    assert f"--artifacts-destination {REPO}/workspace/server/artifacts" in dry
    notebook = json.loads((REPO / "notebooks" / "02_tracking_server.ipynb").read_text())
    text = {kind: "".join("".join(c["source"]) for c in notebook["cells"] if c["cell_type"] == kind)
            for kind in ("markdown", "code")}  # fmt: skip
    assert "make mlflow-ui TRACKING=workspace/server" in text["markdown"]
    assert 'server_dir = ws.root / "server"' in text["code"] and "server_dir / 'mlflow.db'" in text["code"]
