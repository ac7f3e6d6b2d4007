"""Reading and exercise minutes per notebook, by the method the README's notebook table states.

*Read*: the prose (markdown outside the solutions) at 200 words a minute plus the code outside the solutions at 5 lines
a minute; *exercises*: the solutions' code, comments included (the learner reads them while writing), at 2 lines a minute; both rounded up to 5 minutes. Usage:
``python scripts/notebook_times.py [notebooks/NN_*.ipynb ...]``
"""

from __future__ import annotations

import math
import re
import sys
from pathlib import Path

import nbformat

WORDS_A_MINUTE, LINES_A_MINUTE, SOLUTION_LINES_A_MINUTE = 200, 5, 2
SOLUTIONS = re.compile(r"^#+\s*Solutions?\b", re.IGNORECASE | re.MULTILINE)


def _up5(minutes: float) -> int:
    return max(5, 5 * math.ceil(minutes / 5))


def _code_lines(source: str, *, comments: bool = False) -> int:
    lines = [line.strip() for line in source.splitlines() if line.strip()]
    return sum(1 for line in lines if comments or not line.startswith("#"))


def minutes(path: Path) -> tuple[int, int]:
    """``(read, exercises)`` in minutes for one notebook."""
    nb = nbformat.read(path, as_version=4)
    words = code = solution_code = 0
    in_solutions = False
    for cell in nb.cells:
        if cell.cell_type == "markdown" and SOLUTIONS.search(cell.source):
            in_solutions = True
        if cell.cell_type == "markdown" and not in_solutions:
            words += len(cell.source.split())
        elif cell.cell_type == "code":
            if in_solutions:
                solution_code += _code_lines(cell.source, comments=True)
            else:
                code += _code_lines(cell.source)
    read = words / WORDS_A_MINUTE + code / LINES_A_MINUTE
    return _up5(read), _up5(solution_code / SOLUTION_LINES_A_MINUTE)


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted(Path("notebooks").glob("[0-9][0-9]_*.ipynb"))
    for p in paths:
        read, exercises = minutes(p)
        print(f"{p.name:40s} read {read:4d} min  exercises {exercises:3d} min")
