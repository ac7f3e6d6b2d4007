"""The plumbing behind the MLOps course notebooks.

One module per job (see COURSE.md): ``workspace`` (where state lives, tracking URI, quiet and offline settings),
``data`` (datasets, dtypes, time windows, checksums), ``processes`` (background servers on loopback),
``course`` (the headless notebook runner and its CLI), ``plots`` (figures the notebooks share).

Importing the package is cheap and has no side effects: mlflow, evidently and matplotlib are imported only inside the
functions that use them.
"""

from pathlib import Path

__version__ = "0.1.0"

#: The repository root (the folder holding ``notebooks/``, ``data/`` and this package).
REPO_ROOT = Path(__file__).resolve().parent.parent

__all__ = ["REPO_ROOT", "__version__"]
