"""The exercise API: every check says "not yet" with a reason on the empty answer, names what is wrong in a wrong one,
and passes on the solution; the student edition removes the solution cells and nothing else."""

from __future__ import annotations

import hashlib
import importlib.util
import re

import mlflow
import nbformat
import pandas as pd
import pytest
from exercise_checks import not_yet, passes

from mlops_helpers import REPO_ROOT, course, data, exercises
from mlops_helpers.names import MODEL_NAME

# --- the Exercise object


def test_an_empty_answer_is_not_yet_and_never_raises():
    exercise = exercises.Exercise("00", 1, lambda answer: "right", ["first", "second"])
    for empty in (..., None):
        not_yet(exercise.check(empty), "no answer: replace `...`", "exercise 1")
    not_yet(exercise.check())


def test_a_checker_that_raises_not_yet_gives_its_reason():
    def checker(answer):
        raise exercises.NotYet(f"{answer} is wrong")

    not_yet(exercises.Exercise("00", 1, checker).check(7), "7 is wrong")
    unreadable = exercises.Exercise("00", 1, lambda answer: float(answer)).check("many")
    not_yet(unreadable, "could not be checked: ValueError: could not convert")


def test_hints_are_tiered(capsys):
    exercise = exercises.Exercise("00", 1, lambda answer: "right", ["first", "second"])
    exercise.hint(), exercise.hint(), exercise.hint()
    assert capsys.readouterr().out.splitlines() == ["Hint 1/2: first", "Hint 2/2: second", "Hint 2/2: second"]
    exercise.hint(1)
    assert capsys.readouterr().out == "Hint 1/2: first\n"


@pytest.mark.parametrize("path", course.notebooks(), ids=lambda p: p.name[:2])
def test_solution_prints_the_notebooks_solution_cells(path, capsys):
    notebook = path.name[:2]
    for number in _listed_exercises(path):
        source = exercises.solution_source(notebook, number)
        assert re.match(rf"# (\d+, )*{number}\.", source) and f"q{number}.check(" in source, (number, source[:80])
    exercises.Exercise(notebook, 2, lambda a: "").solution()
    assert capsys.readouterr().out.startswith("# 2.")


def test_small_checks_say_what_is_wrong():
    with pytest.raises(exercises.NotYet, match="should be an int, not a str"):
        exercises.expect_type("3", int, "the hour")
    with pytest.raises(exercises.NotYet, match=r"lacks the key\(s\) \['production'\]"):
        exercises.expect_keys({"train": 0.1}, ["train", "production"], "the shares")
    with pytest.raises(exercises.NotYet, match=r"too high by 0\.5"):
        exercises.expect_close(1.5, 1.0, "x", 0.01)
    with pytest.raises(exercises.NotYet, match=r"missing \['b'\]; should not contain \['c'\]"):
        exercises.expect_same_set(["a", "c"], ["a", "b"], "names")


# --- notebook 00, against the data


@pytest.fixture(scope="module")
def frames():
    bikes = data.load_bikes()
    return data.window(bikes, *data.TRAIN_WINDOW), data.window(bikes, data.TRAIN_WINDOW.end, "2012-01-01")


def test_notebook_00(frames):
    train, production = frames
    q1, q2, q3 = exercises.notebook_00(train, production)
    peak = int(train[train["workingday"] == 0].groupby("hr")["bikers"].mean().idxmax())
    not_yet(q1.check(peak + 1), f"hour {peak + 1}", "another hour")
    not_yet(q1.check(str(peak)), "int")
    passes(q1.check(peak))
    passes(q1.check(train[train["workingday"] == 0].groupby("hr")["bikers"].mean().idxmax()))  # numpy's int64
    shares = {
        n: (f["weathersit"] == "light rain/snow").mean() for n, f in (("train", train), ("production", production))
    }
    not_yet(q2.check({"train": shares["train"]}), "production")
    not_yet(q2.check({**shares, "train": shares["train"] + 0.05}), "train share", "too high by 0.05")
    passes(q2.check(pd.Series(shares)))
    digest = hashlib.sha256((data.DATA_DIR / data.WEATHER_FILE).read_bytes())
    not_yet(q3.check(digest), "str")
    not_yet(q3.check(hashlib.sha256(b"").hexdigest()), "data/checksums")
    passes(q3.check(digest.hexdigest()))


# --- notebooks 01 and 03, against a tracking store and a registry


def test_notebook_01(tmp_workspace, module_tracking_env):
    from mlops_helpers import workspace

    ws = workspace.setup(tmp_workspace, experiment="exercise-test")
    rmse = {"forest-depth-8": 45.0, "forest-depth-4": 60.0, "knn-5": 50.0, "boosting-depth-5": 40.0, "knn-25": 70.0}
    for name, value in rmse.items():
        with mlflow.start_run(run_name=name):
            mlflow.set_tags({"sweep": "s1", "family": name.split("-")[0].replace("forest", "random_forest")})
            mlflow.log_metric("val_rmse", value)
    q1, q2, q3 = exercises.notebook_01("exercise-test", "s1")
    for q in (q1, q2, q3):
        not_yet(q.check(...), "no answer: replace `...`")
    not_yet(q1.check({"knn-5": 3}), "knn-25")
    not_yet(q1.check({"knn-5": 2, "knn-25": 5}), "knn-5 is number 3 of 5")
    passes(q1.check({"knn-5": 3, "knn-25": 5}))
    not_yet(q1.check({"knn-5": 2, "knn-25": 4}), "places count from 1")
    with mlflow.start_run(run_name="knn-5"):  # the learner's cell run a second time logs the same name again
        mlflow.set_tags({"sweep": "s1", "family": "knn"})
        mlflow.log_metric("val_rmse", 50.0)
    passes(q1.check({"knn-5": 3, "knn-25": 5}))
    not_yet(q2.check(["forest-depth-8", "forest-depth-4"]), "should not contain ['forest-depth-4']")
    passes(q2.check(["forest-depth-8"]))
    passes(q2.check(pd.Series(["forest-depth-8"])))  # a column of search_runs' frame is an answer too
    not_yet(q3.check(0.7), "flights-delays")
    workspace.ensure_experiment(ws, "flights-delays")
    mlflow.set_experiment("flights-delays")
    with mlflow.start_run():
        mlflow.log_metric("val_auc", 0.7)
    not_yet(q3.check(0.71), "not the val_auc of any run")
    not_yet(q3.check(1.3), "between 0 and 1")
    passes(q3.check(0.7))


def test_notebook_03(ridge_challenger):
    from mlflow import MlflowClient

    _, champion, ridge = ridge_challenger
    client = MlflowClient()
    q1, q2, q3 = exercises.notebook_03(MODEL_NAME)
    for q in (q1, q2, q3):
        not_yet(q.check(None), "no answer: replace `...`")
    not_yet(q2.check([]), "gate the ridge of exercise 1 first")  # nothing failed yet: an empty list is no answer
    not_yet(q1.check(ridge), "no 'validation_status' tag")
    client.set_model_version_tag(MODEL_NAME, ridge, "validation_status", "passed")
    not_yet(q1.check(ridge), "is worse", "not 'failed'")
    client.set_model_version_tag(MODEL_NAME, ridge, "validation_status", "failed")
    passes(q1.check(ridge))
    client.set_model_version_tag(MODEL_NAME, champion, "validation_status", "passed")
    not_yet(q1.check(champion), "register the best ridge run")  # the lesson's champion passes without a gate
    passes(q1.check(int(ridge)))  # the version as the store's int or as text
    # a gate that promoted the worse model
    client.set_model_version_tag(MODEL_NAME, ridge, "validation_status", "passed")
    client.set_registered_model_alias(MODEL_NAME, "champion", ridge)
    not_yet(q1.check(ridge), "promoted the worse model")
    client.set_registered_model_alias(MODEL_NAME, "champion", champion)
    client.set_model_version_tag(MODEL_NAME, ridge, "validation_status", "failed")
    not_yet(q2.check([]), f"missing ['{ridge}']")
    passes(q2.check([ridge]))
    rows = []
    for version in (champion, ridge):
        mv = client.get_model_version(MODEL_NAME, version)
        run = mlflow.get_run(mv.run_id)
        digest = next(d.dataset.digest for d in run.inputs.dataset_inputs if d.tags[0].value == "validation")
        family = mv.tags.get("family") or run.data.tags["family"]  # the version's tag, or (not set here) the run's
        rows.append({"run": run.info.run_name, "family": family, "validation data": digest})
    not_yet(q3.check(pd.DataFrame(rows).drop(columns="family")), "lacks the column(s) ['family']")
    not_yet(q3.check(pd.DataFrame([{**rows[0], "validation data": "0000"}])), "the registry says")
    not_yet(q3.check(pd.DataFrame(rows)), "2 distinct run(s): one row per version registered here")
    # the same rows twice are still two versions' worth (passing needs three runs: notebook 03's solution, under nbval)
    not_yet(q3.check(pd.DataFrame(rows * 2)), "2 distinct run(s)")


# --- the committed notebooks' exercise cells, and the student edition


def _student_module():
    spec = importlib.util.spec_from_file_location("student", REPO_ROOT / "scripts" / "student.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("path", course.notebooks(), ids=lambda p: p.name)
def test_every_exercise_cell_shows_not_yet_on_its_empty_answer(path):
    """An answer cell holds `...` and its committed output is the check's "Not yet" with a reason (never an error)."""
    cells = [c for c in nbformat.read(path, as_version=4).cells if "exercise" in c.metadata.get("tags", [])]
    for cell in cells:
        assert " = ...\n" in cell.source and ".check(" in cell.source, cell.source
        shown = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
        assert shown.startswith("Not yet: ") and len(shown) > len("Not yet: ") + 20, (path.name, shown)
    listed = _listed_exercises(path)
    answered = sorted(int(re.match(r"# (\d+)\.", c.source)[1]) for c in cells)
    assert answered == listed, f"{path.name}: exercises {listed} listed, answer cells for {answered}"
    solved = {int(n) for c in nbformat.read(path, as_version=4).cells if "solution" in c.metadata.get("tags", [])
              for n in re.findall(r"(\d+)[.,]", (re.match(r"# ((?:\d+[.,] ?)+)", c.source) or [""])[0])}  # fmt: skip
    assert set(listed) <= solved, f"{path.name}: no solution cell for exercise(s) {sorted(set(listed) - solved)}"


def _listed_exercises(path) -> list[int]:
    """The numbers of the exercises in the notebook's "## Exercises" list."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown" and "## Exercises" in cell.source:
            listed = cell.source.split("## Exercises", 1)[1]
            return [int(n) for n in re.findall(r"^(\d+)\. ", listed, flags=re.M)]
    raise AssertionError(f"{path.name} has no '## Exercises' list")


def test_student_edition_differs_only_by_the_solution_cells(tmp_path):
    student = _student_module()
    written = student.write_edition(tmp_path / "student")
    assert [p.name for p in written] == [p.name for p in course.notebooks()]
    for path in written:
        source = nbformat.read(REPO_ROOT / "notebooks" / path.name, as_version=4)
        edition = nbformat.read(path, as_version=4)
        kept = [c for c in source.cells if "solution" not in c.metadata.get("tags", [])]
        assert edition.cells == kept and edition.metadata == source.metadata
        removed = len(source.cells) - len(edition.cells)
        assert removed >= 2, f"{path.name}: {removed} solution cell(s) removed"
        assert not any(re.search(r"assert q\d\.check\(", c.source) for c in edition.cells), "a solution's check"
        assert not any(c.source.startswith("### Solutions") for c in edition.cells)
