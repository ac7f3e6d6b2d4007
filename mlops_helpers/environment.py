"""The pinned environment: what is pinned, what is installed, and what a logged model needs (notebooks 00, 01).

``requirements.in`` holds the course's top-level pins, ``requirements.lock`` every transitive pin (``make lock``
writes it), ``environment.yml`` the same pins for conda users. A test keeps the three in agreement. The same pins
serve every Python in :data:`SUPPORTED_PYTHONS`.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlops_helpers import REPO_ROOT

REQUIREMENTS_IN = REPO_ROOT / "requirements.in"
REQUIREMENTS_LOCK = REPO_ROOT / "requirements.lock"

#: The Python versions the course runs on, oldest first: one ``requirements.lock`` holds on each (``make lock`` checks
#: it); ``make setup`` takes the newest it finds (``scripts/find_python.sh``). 3.11 from 3.11.5 (soupsieve's minimum).
SUPPORTED_PYTHONS = ((3, 11), (3, 12), (3, 13))

#: What a scikit-learn model logged by the course needs to be loaded and served elsewhere.
MODEL_PACKAGES = ("mlflow", "scikit-learn", "skops", "numpy", "pandas", "scipy")


def read_pins(path: str | Path) -> dict[str, str]:
    """``{normalised name: version}`` for every ``name==version`` line of a requirements file."""
    pins = {}
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line and not line.startswith("-"):
            name, version = line.split("==", 1)
            pins[normalise(name)] = version.split(";")[0].strip()
    return pins


def normalise(name: str) -> str:
    """A package name as PyPI compares them (``Prometheus_Client`` -> ``prometheus-client``)."""
    return re.sub(r"[-_.]+", "-", name.strip()).lower()


def environment_report(requirements: str | Path = REQUIREMENTS_IN) -> list[dict[str, str]]:
    """Each top-level pin of the course with the version installed here (``"missing"`` if absent), in file order."""
    from importlib.metadata import PackageNotFoundError, version

    rows = []
    for name, pinned in read_pins(requirements).items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = "missing"
        rows.append({"package": name, "pinned": pinned, "installed": installed, "ok": installed == pinned})
    return rows


def model_requirements(packages: tuple[str, ...] = MODEL_PACKAGES, lock: str | Path = REQUIREMENTS_LOCK) -> list[str]:
    """Exact pins (``name==version``) from the lock for what a served model needs, for ``log_model(pip_requirements=)``.

    Stating them is faster than letting MLflow infer them (it loads the model in a subprocess: about 5 s a model)
    and cannot guess wrong.
    """
    pins = read_pins(lock)
    missing = [p for p in packages if normalise(p) not in pins]
    if missing:
        raise KeyError(f"{', '.join(missing)} not pinned in {lock}: add to requirements.in and run `make lock`")
    return [f"{p}=={pins[normalise(p)]}" for p in packages]
