"""Print pip's package-index settings as uv options, one per line (used by scripts/setup.sh).

uv does not read pip's configuration (pip.conf, PIP_* variables), so `make setup` hands it the same indexes pip would
use: index-url, extra-index-url, find-links and constraint, as `pip config list` reports them (environment variables
over the `install` section over `global`). With extra indexes, uv is told to pick the best match across all of them
as pip does (`--index-strategy unsafe-best-match`); the lock pins every version exactly either way.

Run with the venv's Python (it calls `python -m pip config list`). Prints nothing when pip has no such settings.
"""

from __future__ import annotations

import ast
import subprocess
import sys

# pip option -> uv option
OPTIONS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
}
PRECEDENCE = {":env:": 3, "install": 2, "global": 1}


def pip_settings(listing: str) -> dict[str, list[str]]:
    """``{option: [values]}`` from the output of ``pip config list``, the most specific section winning."""
    best: dict[str, tuple[int, list[str]]] = {}
    for line in listing.splitlines():
        key, sep, raw = line.partition("=")
        section, _, option = key.rpartition(".")
        if not sep or option not in OPTIONS or section not in PRECEDENCE:
            continue
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip().strip("'\"")
        rank = PRECEDENCE[section]
        if option not in best or rank > best[option][0]:
            best[option] = (rank, str(value).split())
    return {option: values for option, (_, values) in best.items()}


def uv_args(settings: dict[str, list[str]]) -> list[str]:
    """The uv command-line options for pip's settings."""
    args = []
    for option, flag in OPTIONS.items():
        for value in settings.get(option, []):
            args += [flag, value]
    if settings.get("extra-index-url") or settings.get("find-links"):
        args += ["--index-strategy", "unsafe-best-match"]
    return args


def main() -> int:
    done = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=False)
    print("\n".join(uv_args(pip_settings(done.stdout))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
