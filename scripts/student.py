"""The student edition: every notebook with its solution cells removed; hints, checks and answer cells kept.

    python scripts/student.py [--out student]      # `make student` calls this

A solution is a cell tagged ``solution`` (a tag, never a match on the text): the "### Solutions" heading, the
solution code and the prose about it. Everything else is copied as it is, outputs included, so the student notebook
reads like the committed one up to its exercises, whose answer cells still hold ``...`` and whose checks say
"Not yet". The output folder is git-ignored; it is written anew each time.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parent.parent
SOLUTION_TAG = "solution"
DEFAULT_OUT = REPO_ROOT / "student"


def is_solution(cell: dict) -> bool:
    """A cell the student edition removes."""
    return SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])


def student_notebook(source: Path) -> nbformat.NotebookNode:
    """The notebook at ``source`` without its solution cells."""
    nb = nbformat.read(source, as_version=4)
    nb.cells = [cell for cell in nb.cells if not is_solution(cell)]
    return nb


def write_edition(out: Path = DEFAULT_OUT, notebook_dir: Path = REPO_ROOT / "notebooks") -> list[Path]:
    """Write the student edition of every course notebook into ``out`` (emptied first); return the paths."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    written = []
    for source in sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb")):
        target = out / source.name
        nbformat.write(student_notebook(source), target)
        written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default: student/)")
    args = parser.parse_args(argv)
    written = write_edition(args.out.resolve())
    removed = sum(
        sum(map(is_solution, nbformat.read(REPO_ROOT / "notebooks" / p.name, as_version=4).cells)) for p in written
    )
    print(f"wrote {len(written)} student notebooks to {args.out} ({removed} solution cells removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
