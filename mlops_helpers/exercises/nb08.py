"""Notebook 08's exercises, checked against the learner's compiled YAML, the local runner's outputs under
``kfp-runs/`` and the package's own pipeline and data contract."""

from __future__ import annotations

import json
import re
import tempfile
from functools import partial
from pathlib import Path
from typing import Any

from mlops_helpers.exercises import Exercise, NotYet, as_list, expect_keys, expect_type

STRICT_MAX_RMSE = 60.0  # the exercise's stricter default (a parameter of the question, not a measured number)


# --- 1. a check component before train


def _checked_pipeline(kfp_dir: Path, window: str, answer: Any) -> str:
    import yaml

    from mlops_helpers import data, pipeline

    answer = expect_keys(expect_type(answer, dict, "your answer"), ["compiled", "error"], "your answer")
    path = Path(expect_type(answer["compiled"], (str, Path), "'compiled' (the path of the YAML you compiled)"))
    if not path.is_file():
        raise NotYet(f"'compiled': there is no file {path.name!r} there; compile with compiler.Compiler().compile")
    spec = yaml.safe_load(path.read_text())
    tasks = spec.get("root", {}).get("dag", {}).get("tasks", {}) if isinstance(spec, dict) else {}
    if "train" not in tasks:
        raise NotYet(f"{path.name} has no task 'train' (its tasks: {sorted(tasks)}): compile your new pipeline")
    others = sorted(set(tasks) - {"train", "evaluate"})
    if not others:
        raise NotYet(f"{path.name} has only the tasks {sorted(tasks)}: call your check component in the pipeline")
    waits = set(tasks["train"].get("dependentTasks", []))
    if not waits & set(others):
        raise NotYet(f"train does not wait for {others}: with no data between them, order them with "
                     "`train(...).after(checked)`")  # fmt: skip
    fed = [name for name in waits & set(others)
           if "data_uri" in json.dumps(tasks[name].get("inputs", {}))]  # fmt: skip
    if not fed:
        raise NotYet(f"{sorted(waits & set(others))} does not take the pipeline's data_uri: it must read the batch")
    error = expect_type(answer["error"], str, "'error' (the message your check raised on the Celsius batch)")
    celsius = Path(kfp_dir) / "bikes-celsius.csv"
    frame, report = pipeline.validate_data(str(celsius), data.Window.parse(window))
    if frame is not None:
        raise NotYet(f"{celsius.name} passes the data contract here: run run 2's cell first, which writes it")
    verdict = report.verdict()
    if verdict not in error:
        if error.strip() and "REFUSED" not in error:
            raise NotYet(f"{error[:80]!r} is not the contract's verdict on the Celsius batch: raise "
                         "`ValueError(report.verdict())` and run your check on bikes-celsius.csv")  # fmt: skip
        raise NotYet(f"the contract's verdict on the Celsius batch is not in your message: it names the broken rule "
                     f"(it starts {verdict[:24]!r})")  # fmt: skip
    return (f"train waits for {fed[0]} in the YAML, and on the Celsius batch it raised the contract's verdict: "
            "on a cluster the run would stop there, red, before any training")  # fmt: skip


# --- 2. a gate before publish


def _local_runs(runs_dir: Path) -> list[dict]:
    """The local runner's pipeline runs, oldest first: the tasks that ran (one folder each) and evaluate's output."""
    runs = []
    for folder in sorted(p for p in Path(runs_dir).iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name == "workspace" or not re.search(r"\d{4}(-\d\d){5}-\d+$", folder.name):
            continue
        evaluated = folder / "evaluate" / "executor_output.json"
        if not evaluated.exists():
            continue
        output = json.loads(evaluated.read_text())
        try:  # an evaluate of yours (the production one logs to MLflow, not to a Metrics artifact)
            rmse = output["artifacts"]["scores"]["artifacts"][0]["metadata"]["holdout_rmse"]
        except (KeyError, IndexError, TypeError):
            continue
        stamp = re.search(r"\d{4}(-\d\d){5}-\d+$", folder.name)[0]
        runs.append({"stamp": stamp, "ran": sorted(p.name for p in folder.iterdir() if p.is_dir()),
                     "passed": output.get("parameterValues", {}).get("Output"), "rmse": rmse})  # fmt: skip
    return sorted(runs, key=lambda run: run["stamp"])


def _tasks_by_threshold(answer: Any, max_rmse: float) -> dict[float, set[str]]:
    """The answer as {max_rmse: {task names}}; NotYet when its shape is not that."""
    answer = expect_type(answer, dict, "your answer ({max_rmse: [the tasks that ran]})")
    thresholds = {}
    for key, tasks in answer.items():
        if isinstance(key, str) or not hasattr(key, "__float__"):
            raise NotYet(f"the keys are the max_rmse you ran with, as numbers (40.0, {max_rmse}), not {key!r}")
        names = [str(t) for t in as_list(tasks, f"the tasks of the run with max_rmse={key}")]
        if any(" " in n for n in names):
            raise NotYet(f"give the tasks' names ('train', 'evaluate', ...), not the runner's lines ({names[0]!r})")
        thresholds[float(key)] = set(names)
    wanted = {40.0, float(max_rmse)}
    if set(thresholds) != wanted:
        raise NotYet(f"one entry per run: max_rmse 40.0 and the default {max_rmse}; yours: {sorted(thresholds)}")
    return thresholds


def _gated_runs(runs_dir: Path, max_rmse: float, answer: Any) -> str:
    thresholds = _tasks_by_threshold(answer, max_rmse)
    gated = [run for run in _local_runs(runs_dir) if "publish" in run["ran"] or run["passed"] is False]
    if not gated:
        raise NotYet("kfp-runs/ has no run of a gated pipeline yet: run yours with max_rmse=40.0, then the default")
    rmse = gated[-1]["rmse"]
    for threshold, given in sorted(thresholds.items()):
        passed = rmse <= threshold
        run = next((r for r in reversed(gated) if r["passed"] is passed), None)
        if run is None:
            raise NotYet(f"no run in kfp-runs/ where evaluate returned {passed}: run the pipeline with "
                         f"max_rmse={threshold}")  # fmt: skip
        ran = set(run["ran"])
        if "publish" in given and "publish" not in ran:
            raise NotYet(f"with max_rmse={threshold} evaluate returned False (RMSE {rmse:.2f} > {threshold}): "
                         "dsl.If skipped publish")  # fmt: skip
        if "publish" in ran and "publish" not in given:
            raise NotYet(f"with max_rmse={threshold} evaluate passed (RMSE {rmse:.2f} <= {threshold}): publish ran")
        if "train" in given and "train" not in ran:
            raise NotYet(
                f"with max_rmse={threshold} train did not run: its component and inputs were those of your "
                "first run, so kfp.local took its outputs from the cache (no 'Task train finished' line)"
            )
        if ran != given:
            missing, extra = sorted(ran - given), sorted(given - ran)
            raise NotYet(f"with max_rmse={threshold} the tasks that ran were {sorted(ran)}: "
                         f"missing {missing}, should not contain {extra}")  # fmt: skip
    cached = "train came from the cache in both" if all("train" not in t for t in thresholds.values()) else ""
    return (
        f"the RMSE is {rmse:.2f}: at 40.0 the gate closed and publish was skipped, at {max_rmse} it ran; "
        f"{cached or 'train ran'}; evaluate ran each time (a Metrics output with no file is never cached)"
    )


# --- 3. a default changed at compile time


def _changed_lines(answer: Any) -> str:
    from kfp import compiler

    from mlops_helpers import kfp_pipeline

    pairs = as_list(answer, "your answer (the changed lines, as (old, new) pairs)")
    given = []
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise NotYet(f"each changed line is an (old, new) pair of lines, not {pair!r:.60}")
        given.append((str(pair[0]).strip(), str(pair[1]).strip()))
    with tempfile.TemporaryDirectory() as folder:  # the package's pipeline compiled both ways: the reference
        default, strict = Path(folder) / "default.yaml", Path(folder) / "strict.yaml"
        compiler.Compiler().compile(kfp_pipeline.training_pipeline, str(default))
        compiler.Compiler().compile(kfp_pipeline.training_pipeline, str(strict),
                                    pipeline_parameters={"max_rmse": STRICT_MAX_RMSE})  # fmt: skip
        lines = zip(default.read_text().splitlines(), strict.read_text().splitlines(), strict=True)
        expected = [(old.strip(), new.strip()) for old, new in lines if old != new]
    if sorted((new, old) for old, new in given) == sorted(expected):
        raise NotYet("your pairs are (new, old): put the default compile's line first")
    missing, extra = [p for p in expected if p not in given], [p for p in given if p not in expected]
    if extra and len(given) > len(expected):
        raise NotYet(f"{len(given)} changed lines, where the default alone changes {len(expected)}: did the code "
                     f"change too? Compile kfp_pipeline.training_pipeline unedited; e.g. {extra[0]}")  # fmt: skip
    if missing:
        raise NotYet(f"missing the change {missing[0]}" + (f"; {extra[0]} is not one" if extra else ""))
    if extra:
        raise NotYet(f"{extra[0]} is not a line the stricter default changes")
    return (
        f"{len(expected)} lines: the default in root.inputDefinitions and the header comment that lists it. "
        "The compiled YAML is the artifact a cluster runs: a reviewer sees the new gate in its diff"
    )


def notebook_08(kfp_dir: Path, runs_dir: Path, window: str, max_rmse: float) -> tuple[Exercise, ...]:
    """Notebook 08's exercises: a check component, a gate before publish, a default changed at compile time."""
    return (
        Exercise("08", 1, partial(_checked_pipeline, Path(kfp_dir), window), [
            "The component: call `pipeline.validate_data(data_uri, (window_start, window_end))` and raise "
            "`ValueError(report.verdict())` when the frame is None.",
            "In the pipeline: `checked = check(...)`, then `train(...).after(checked)`; compile, then look at "
            "`['root']['dag']['tasks']['train']['dependentTasks']`.",
            "Run `check(data_uri=str(bad_batch), ...)` alone inside `contextlib.suppress(RuntimeError)` and "
            "keep the line of its log with ValueError. Answer {'compiled': path, 'error': that line}.",
        ]),
        Exercise("08", 2, partial(_gated_runs, Path(runs_dir), float(max_rmse)), [
            "`with dsl.If(evaluated.outputs['Output'] == True):` publish(...). Run with max_rmse=40.0, then MAX_RMSE.",
            "`verdicts(log)` lists the tasks that finished: one from the cache or skipped by dsl.If is not there.",
            "Answer `{40.0: ['evaluate'], ...}`: for each max_rmse, the names of the tasks that ran.",
        ]),
        Exercise("08", 3, _changed_lines, [
            "`compiler.Compiler().compile(kfp_pipeline.training_pipeline, path, pipeline_parameters={...})`.",
            "Compare the files line by line: `zip(old.splitlines(), new.splitlines())`; keep the pairs that differ.",
        ]),
    )  # fmt: skip
