"""The headless runner: runs notebooks with papermill, reports a table, names the failing cell, keeps the copy."""

from __future__ import annotations

import json

import nbformat
import pytest

from mlops_helpers import course


def _notebook(path, cells, parameters="X = 1"):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": course.KERNEL_NAME, "display_name": "course", "language": "python"}
    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(nb, path)
    return path


@pytest.fixture
def notebook_dir(tmp_path):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    _notebook(
        folder / "00_ok.ipynb",
        ["import os\nopen(os.path.join(os.environ['COURSE_WORKSPACE'], 'seen.txt'), 'w').write(str(X))", "X * 2"],
    )
    _notebook(folder / "01_fails.ipynb", ["y = X + 1", "raise ValueError(f'broken at {y}')", "print('never')"])
    (folder / "notes.ipynb").write_text("{}")  # not a course notebook: no NN_ prefix
    return folder


def test_discovery_and_only(notebook_dir):
    assert [p.name for p in course.notebooks(None, notebook_dir)] == ["00_ok.ipynb", "01_fails.ipynb"]
    assert [p.name for p in course.notebooks(["01"], notebook_dir)] == ["01_fails.ipynb"]
    with pytest.raises(SystemExit, match="No notebook starts with 07"):
        course.notebooks(["07"], notebook_dir)


def test_run_reports_each_notebook_and_the_failing_cell(notebook_dir, tmp_path):
    ws = tmp_path / "ws"
    results = course.run(None, ws, {"X": 20}, notebook_dir=notebook_dir)
    ok, failed = results
    assert (ok.status, failed.status) == ("ok", "failed")
    assert (ws / "seen.txt").read_text() == "20"  # the parameter and the workspace reached the kernel
    assert "ValueError: broken at 21" in failed.error and "cell" in failed.error
    kept = nbformat.read(failed.output, as_version=4)
    assert any(o.get("output_type") == "error" for c in kept.cells for o in c.get("outputs", []))
    summary = json.loads((ws / "executed" / "summary.json").read_text())
    assert [r["status"] for r in summary] == ["ok", "failed"]
    table = course.format_table(results)
    assert "00_ok.ipynb" in table and "FAILED 01_fails.ipynb" in table and "executed copy kept" in table


def test_fail_fast_stops_at_the_first_failure(notebook_dir, tmp_path):
    _notebook(notebook_dir / "02_later.ipynb", ["1"])
    results = course.run(["01", "02"], tmp_path / "ws", notebook_dir=notebook_dir, fail_fast=True)
    assert [r.notebook for r in results] == ["01_fails.ipynb"]


def test_unknown_parameter_is_refused(notebook_dir, tmp_path):
    with pytest.raises(SystemExit, match="NOPE"):
        course.run(None, tmp_path / "ws", {"NOPE": 1}, notebook_dir=notebook_dir)


def test_cli_exit_code_and_table(notebook_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(course, "NOTEBOOK_DIR", notebook_dir)
    assert course.main(["run", "--only", "00", "--workspace", str(tmp_path / "a"), "-p", "X", "3"]) == 0
    assert course.main(["run", "--workspace", str(tmp_path / "b")]) == 1
    out = capsys.readouterr().out
    assert "status  seconds" in out and "FAILED 01_fails.ipynb" in out


def test_parse_value():
    assert course.parse_value("3") == 3 and course.parse_value("0.5") == 0.5
    assert course.parse_value("[1, 2]") == [1, 2] and course.parse_value("citybikes") == "citybikes"


def test_clean_executed_strips_papermill_metadata(notebook_dir, tmp_path):
    source = notebook_dir / "00_ok.ipynb"
    (result,) = course.run(["00"], tmp_path / "ws", notebook_dir=notebook_dir)
    assert result.status == "ok"
    cleaned = course.clean_executed(source, tmp_path / "ws" / "executed" / "00_ok.ipynb")
    assert "papermill" not in cleaned.metadata
    assert all("papermill" not in c.metadata and "execution" not in c.metadata for c in cleaned.cells)
    assert [c.execution_count for c in cleaned.cells] == [1, 2, 3]
    assert cleaned.cells[2].outputs[0]["data"]["text/plain"] == "2"


def test_a_notebook_that_leaves_a_server_running_fails(notebook_dir, tmp_path):
    leak = (
        "import subprocess, sys\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True)"
    )
    _notebook(notebook_dir / "03_leaks.ipynb", [leak])
    (result,) = course.run(["03"], tmp_path / "ws", notebook_dir=notebook_dir)
    assert result.status == "failed" and "left 1 process(es) running" in result.error
    assert not course.leftover_processes(tmp_path / "ws", wait=0)


def test_cli_runs_another_folder_of_notebooks(notebook_dir, tmp_path, capsys):
    """`make rerun` runs the student edition this way: `--notebooks student`."""
    assert (
        course.main(["run", "--notebooks", str(notebook_dir), "--only", "00", "--workspace", str(tmp_path / "a")]) == 0
    )
    assert "00_ok.ipynb" in capsys.readouterr().out
    assert (tmp_path / "a" / "seen.txt").read_text() == "1"
