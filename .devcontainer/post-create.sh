#!/usr/bin/env bash
# The dev container's postCreateCommand (Codespaces, VS Code Dev Containers): what a learner's laptop does once.
# Prometheus, Alertmanager and shellcheck from Debian (make system-deps: the image's user has passwordless sudo), then
# the pinned environment on the image's Python 3.11 (make setup), from the wheelhouse if one was copied into the
# repository (make wheelhouse), else from the package index. Afterwards: `make lab`, or open a notebook in VS Code
# with the "MLOps course" kernel (.venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
make system-deps
make setup PYTHON="$(command -v python3.11)"
