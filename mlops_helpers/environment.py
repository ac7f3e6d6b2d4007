"""The pinned environment: what is pinned, what is installed, and what a logged model needs (notebooks 00, 01).

``requirements.in`` holds the course's top-level pins, ``requirements.lock`` every transitive pin (``make lock``
writes it), ``environment.yml`` the same pins for conda users. A test keeps the three in agreement. The same pins
serve every Python in :data:`SUPPORTED_PYTHONS`.

What a logged model needs travels *with the package*: ``mlops_helpers/model-requirements.txt`` (package data, written
from the lock by :func:`write_model_requirements`, which ``make lock`` calls; a test checks that it agrees with the
lock). So :func:`model_requirements` works wherever the package is installed (a Kubeflow component image, a serving
runtime, any working directory), where ``requirements.lock`` is not.
"""

from __future__ import annotations

import re
from pathlib import Path

from mlops_helpers import REPO_ROOT

REQUIREMENTS_IN = REPO_ROOT / "requirements.in"


def feast_venv(prefix: str | Path) -> Path:
    """Feast's own venv (notebook 11) for the course venv at ``prefix``: ``.feast-venv`` beside ``.venv``, and
    ``.feast-venv-3.13`` beside ``.venv-3.13``. One per course venv, built with its Python: CI sets up a second
    Python's venv while the first one's notebooks use theirs, and a shared one would be rebuilt under them."""
    name = Path(prefix).name
    return REPO_ROOT / (".feast-venv" + (name[len(".venv") :] if name.startswith(".venv") else ""))


REQUIREMENTS_LOCK = REPO_ROOT / "requirements.lock"
#: The model's pins, shipped inside the package (generated from the lock: never edit by hand).
MODEL_REQUIREMENTS = Path(__file__).resolve().parent / "model-requirements.txt"

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
            pins[normalise(name.split("[")[0])] = version.split(";")[0].strip()  # `tritonclient[http]`: the package
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


def model_requirements(packages: tuple[str, ...] = MODEL_PACKAGES, lock: str | Path | None = None) -> list[str]:
    """Exact pins (``name==version``) for what a served model needs, for ``log_model(pip_requirements=)``.

    By default from :data:`MODEL_REQUIREMENTS`, the file shipped in the package (so this works from any directory
    and in any image the package is installed in); ``lock=`` reads them from a requirements lock instead. Stating the
    pins is faster than letting MLflow infer them (it loads the model in a subprocess: about 5 s a model) and cannot
    guess wrong. Raises ``KeyError`` naming the fix when a package is not pinned.
    """
    source = MODEL_REQUIREMENTS if lock is None else Path(lock)
    pins = read_pins(source)
    missing = [p for p in packages if normalise(p) not in pins]
    if missing:
        fix = "add to requirements.in and run `make lock`"
        if lock is None and normalise(missing[0]) not in {normalise(p) for p in MODEL_PACKAGES}:
            fix = f"only {', '.join(MODEL_PACKAGES)} ship with the package; pass lock= for others, or {fix}"
        raise KeyError(f"{', '.join(missing)} not pinned in {source}: {fix}")
    return [f"{p}=={pins[normalise(p)]}" for p in packages]


def write_model_requirements(lock: str | Path = REQUIREMENTS_LOCK, path: str | Path = MODEL_REQUIREMENTS) -> Path:
    """Write the model's pins from ``lock`` into the package data file ``path`` (``make lock`` calls this)."""
    pins = model_requirements(lock=lock)
    header = "# What a model logged by the course needs (mlops_helpers.environment.MODEL_PACKAGES), pinned as in\n"
    header += "# requirements.lock. Generated by `make lock` (environment.write_model_requirements): never edit.\n"
    Path(path).write_text(header + "".join(f"{pin}\n" for pin in pins))
    return Path(path)


if __name__ == "__main__":  # python -m mlops_helpers.environment: refresh the shipped model requirements
    print(write_model_requirements())
