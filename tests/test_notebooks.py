"""The committed notebooks: executed, in order, clean, small, and built to the course's template.

These checks read the committed files; `make notebooks` executes them and `make nbval` compares a fresh run's outputs.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import nbformat
import pytest

from mlops_helpers import course, data, names
from mlops_helpers.pipeline import PipelineConfig

NOTEBOOKS = course.notebooks()
MAX_BYTES = 1_000_000
WARNING_PATTERN = re.compile(r"(FutureWarning|DeprecationWarning|PendingDeprecationWarning|SADeprecationWarning)")
NOISE_PATTERNS = {
    "a traceback": re.compile(r"Traceback \(most recent call last\)"),
    "a tqdm/IProgress warning": re.compile(r"IProgress not found"),
    "an MLflow run link": re.compile(r"View run .* at: http"),
    "a warning": re.compile(r"\b\w*Warning: "),
}


def _load(path: Path):
    return nbformat.read(path, as_version=4)


def _output_text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    if output.get("output_type") == "error":
        return "\n".join(output.get("traceback", []))
    data = output.get("data", {})
    return "\n".join(str(data[k]) for k in ("text/plain", "text/html", "text/markdown") if k in data)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def test_there_are_notebooks():
    assert [p.name[:2] for p in NOTEBOOKS][:2] == ["00", "01"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
class TestCommittedNotebook:
    def test_is_valid_and_uses_the_course_kernel(self, path):
        nb = _load(path)
        nbformat.validate(nb)
        assert nb.metadata["kernelspec"]["name"] == course.KERNEL_NAME

    def test_is_executed_in_order(self, path):
        counts = [c.execution_count for c in _code_cells(_load(path))]
        assert None not in counts, "a code cell was not executed: run `make refresh NB=...`"
        assert counts == list(range(1, len(counts) + 1)), f"execution counts out of order: {counts}"

    def test_has_no_error_or_warning_in_outputs(self, path):
        problems = []
        for index, cell in enumerate(_load(path).cells):
            for output in cell.get("outputs", []):
                text = _output_text(output)
                if output.get("output_type") == "error":
                    problems.append(f"cell {index}: error output {output.get('ename')}")
                if WARNING_PATTERN.search(text):
                    problems.append(f"cell {index}: {WARNING_PATTERN.search(text).group(0)} in output")
                problems += [f"cell {index}: {name}" for name, rx in NOISE_PATTERNS.items() if rx.search(text)]
        assert not problems, problems

    def test_is_small(self, path):
        size = path.stat().st_size
        assert size < MAX_BYTES, f"{path.name} is {size / 1e6:.2f} MB: inline HTML or large images?"
        for cell in _load(path).cells:
            for output in cell.get("outputs", []):
                assert len(output.get("data", {}).get("text/html", "")) < 50_000, "a large inline HTML output"

    def test_opens_with_title_purpose_learn_prerequisites_time(self, path):
        nb = _load(path)
        first = nb.cells[0]
        assert first.cell_type == "markdown"
        assert re.match(rf"# {path.name[:2]} · \S", first.source), "the first line is '# NN · Title'"
        for part in ("**Purpose:**", "**You will learn**", "**Prerequisites:**", "**Time:**"):
            assert part in first.source, f"the opening cell lacks {part}"
        assert len(re.findall(r"^- ", first.source, flags=re.M)) >= 3, "'You will learn' has three bullets"

    def test_has_setup_then_exactly_one_parameters_cell(self, path):
        nb = _load(path)
        tagged = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
        assert nb.cells[tagged[0]].cell_type == "code"
        setup = [i for i, c in enumerate(nb.cells) if c.cell_type == "markdown" and c.source.startswith("## Setup")]
        assert setup and setup[0] < tagged[0], "'## Setup' comes before the parameters cell"
        assert not [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]

    def test_ends_with_summary_exercises_solutions_and_next(self, path):
        nb = _load(path)
        markdown = [c.source for c in nb.cells if c.cell_type == "markdown"]
        text = "\n".join(markdown)
        for heading in ("## Summary", "## Exercises", "### Solutions"):
            assert re.search(rf"^{heading}\s*$", text, flags=re.M), f"no '{heading}' section"
        assert text.index("## Summary") < text.index("## Exercises") < text.index("### Solutions")
        solutions_at = next(i for i, c in enumerate(nb.cells) if c.source.startswith("### Solutions"))
        assert _code_cells(nb.__class__(cells=nb.cells[solutions_at:])), "solutions are code that CI executes"
        assert "**Next:**" in markdown[-1] or path == NOTEBOOKS[-1]

    def test_solutions_are_tagged_for_the_student_edition(self, path):
        """`make student` removes the cells tagged `solution`: the heading and every solution's code, nothing before
        the exercises, and never the closing **Next:** cell."""
        nb = _load(path)
        tagged = [i for i, c in enumerate(nb.cells) if "solution" in c.metadata.get("tags", [])]
        solutions_at = next(i for i, c in enumerate(nb.cells) if c.source.startswith("### Solutions"))
        assert tagged and tagged[0] == solutions_at, "the '### Solutions' heading is the first cell tagged 'solution'"
        assert any(nb.cells[i].cell_type == "code" for i in tagged), "no solution code is tagged 'solution'"
        untagged_code = [c.source.splitlines()[0] for c in _code_cells(nb.__class__(cells=nb.cells[solutions_at:]))
                         if "solution" not in c.metadata.get("tags", [])]  # fmt: skip
        assert all(line.startswith("# extra code") for line in untagged_code), (
            f"untagged after the heading: {untagged_code}"
        )
        assert not any("**Next:**" in nb.cells[i].source for i in tagged), "the **Next:** cell stays in the student's"

    def test_no_wrapped_line_reads_as_a_numbered_item(self, path):
        """A list item's text wrapped so that a line starts with a number and a period ("   50.") renders as a nested
        numbered list (notebook 01 once showed "...RMSE is under AX.")."""
        for cell in _load(path).cells:
            if cell.cell_type != "markdown":
                continue
            nested_list = False
            for line in cell.source.splitlines():
                item = re.match(r"^\s+(\d+)[.)](\s|$)", line)
                nested_list |= bool(item) and item.group(1) == "1"
                assert not item or nested_list, f"this wrapped line renders as list item {item.group(1)}: {line!r}"

    def test_asserts_what_it_teaches(self, path):
        assert sum("assert " in c.source for c in _code_cells(_load(path))) >= 3

    def test_no_path_hacks_or_downloads(self, path):
        source = "\n".join(c.source for c in _code_cells(_load(path)))
        for forbidden in ("sys.path.append", "sys.path.insert", "urlretrieve", "fetch_openml", "pip install"):
            assert forbidden not in source, f"{forbidden} in a code cell"

    def test_ignored_outputs_are_explained(self, path):
        for cell in _code_cells(_load(path)):
            if "nbval-ignore-output" in cell.metadata.get("tags", []):
                assert cell.source.lstrip().startswith("#"), "an nbval-ignore-output cell opens with a comment: why"


def _parameters(path: Path) -> tuple[dict[str, object], str]:
    """The parameters cell's ``{name: default}``, and the source of every other code cell."""
    nb = _load(path)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    tree = ast.parse(cell.source)
    values = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
              for t in node.targets if isinstance(t, ast.Name)}  # fmt: skip
    rest = "\n".join(c.source for c in _code_cells(nb) if c is not cell)
    return values, rest


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_parameter_is_used(path):
    """A parameter nothing reads would make `-p NAME VALUE` a silent no-op."""
    values, rest = _parameters(path)
    unused = [name for name in values if not re.search(rf"\b{name}\b", rest)]
    assert not unused, f"{path.name}: parameters never used after the parameters cell: {unused}"


#: Parameters that mirror a name or default of the package, so a learner can change them: they must start equal.
MIRRORED = {
    "MODEL_NAME": names.MODEL_NAME,
    "HOLDOUT_DAYS": PipelineConfig.default("holdout_days"),
    "MAX_RMSE": PipelineConfig.default("max_rmse"),
    "MIN_IMPROVEMENT": PipelineConfig.default("min_improvement"),
    "TRAIN_START": data.TRAIN_WINDOW.start,
    "TRAIN_END": data.TRAIN_WINDOW.end,
    "VALIDATION_START": data.VALIDATION_START,
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_that_mirror_the_package_start_equal(path):
    values, _ = _parameters(path)
    differ = {k: (v, MIRRORED[k]) for k, v in values.items() if k in MIRRORED and v != MIRRORED[k]}
    assert not differ, f"{path.name}: (notebook default, package's) differ: {differ}"
    if path.name.startswith(("01", "03")):
        assert values["EXPERIMENT_NAME"] == names.EXPERIMENT


def test_sanitize_file_parses():
    text = (Path(__file__).parent / "nbval_sanitize.cfg").read_text()
    sections = re.findall(r"^\[(.+)\]\nregex: (.+)\nreplace: (.*)$", text, flags=re.M)
    assert len(sections) >= 5
    for _, regex, _ in sections:
        re.compile(regex)


def test_readme_lists_every_notebook():
    readme = (course.REPO_ROOT / "README.md").read_text()
    for path in NOTEBOOKS:
        assert path.name in readme, f"README's notebook table lacks {path.name}"


def test_readme_reading_and_exercise_times_follow_the_stated_method():
    """The table's *read* and *exercises* columns are what scripts/notebook_times.py computes from the notebooks."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("notebook_times", course.REPO_ROOT / "scripts" / "notebook_times.py")
    times = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(times)
    rows = {}
    for line in (course.REPO_ROOT / "README.md").read_text().splitlines():
        match = re.match(r"\| \[(\d\d_\w+\.ipynb)\]", line)
        if match:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            rows[match.group(1)] = (cells[3], cells[5])
    for path in NOTEBOOKS:
        read, exercises = times.minutes(path)
        assert rows.get(path.name) == (f"{read} min", f"{exercises} min"), (
            f"README's row for {path.name} says read/exercises {rows.get(path.name)}; the notebook gives "
            f"{read} min / {exercises} min (python scripts/notebook_times.py)"
        )


def test_notebook_json_is_stable():
    for path in NOTEBOOKS:
        raw = json.loads(path.read_text())
        assert raw["nbformat"] == 4 and "papermill" not in raw["metadata"]
