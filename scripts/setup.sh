#!/usr/bin/env bash
# `make setup`: the course's venv with requirements.lock installed, mlops_helpers (editable) and the course kernel.
#
# Environment (the Makefile passes them): PYTHON (an interpreter; empty: the newest of 3.13, 3.12, 3.11 that
# scripts/find_python.sh finds), VENV (default .venv), INSTALLER (uv, the default, or pip), UV_VERSION, WHEELHOUSE
# (default wheelhouse: installs from WHEELHOUSE/cpXY with no index when `make wheelhouse` made it).
# An existing venv is kept unless PYTHON names another Python version; then it is made anew.
# uv is installed into the venv with pip and given pip's own index settings (scripts/uv_index_args.py), so both
# installers read the same indexes and install the same versions (the lock pins all of them). Both compile bytecode
# at install time, as pip always does: without it every first import compiles the stack again (with
# PYTHONDONTWRITEBYTECODE set, every import), and Python 3.12+ prints SyntaxWarnings from some packages' sources.
set -euo pipefail  # plain bash 3.2 (macOS's /bin/bash): no mapfile, guarded empty arrays
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
INSTALLER=${INSTALLER:-uv}
UV_VERSION=${UV_VERSION:-0.13.9}
started=$SECONDS

venv_version() { "$VENV/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null; }

have=$(venv_version || true)
if [[ -n ${PYTHON:-} ]]; then
  python=$(scripts/find_python.sh "$PYTHON")
elif [[ -n $have ]]; then
  python=""  # keep the venv as it is
  echo "Python $have in the existing $VENV (make setup PYTHON=... to choose another)"
else
  python=$(scripts/find_python.sh)
fi
if [[ -n $python ]]; then
  want=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
  if [[ -n $have && $have != "$want" ]]; then
    echo "$VENV has Python $have: making it anew with $want"
    rm -rf "$VENV"
  fi
  if [[ ! -x $VENV/bin/python ]]; then
    rm -rf "$VENV"
    "$python" -m venv "$VENV" || {
      echo "Could not create $VENV with $python. On Debian/Ubuntu: sudo apt install python${want%.*}-venv" >&2
      exit 1
    }
  fi
fi
PY=$VENV/bin/python

# The offline wheelhouse (`make wheelhouse`, for this Python version): when it is there and complete, every package,
# uv and the build backend of `-e .` come from it and no index is asked (--no-index), e.g. on conference Wi-Fi.
wheels=${WHEELHOUSE:-wheelhouse}/$("$PY" -c 'import sys; print("cp%d%d" % sys.version_info[:2])')
offline=()
if [[ -f $wheels/.complete ]]; then
  offline=(--no-index --find-links "$wheels")
  echo "installing from the wheelhouse $wheels, with no package index"
elif [[ -d ${WHEELHOUSE:-wheelhouse} ]]; then
  echo "${WHEELHOUSE:-wheelhouse}/ has no complete ${wheels##*/} for this Python: installing from the package index"
fi

case $INSTALLER in
  uv)
    "$PY" -m pip install --quiet --disable-pip-version-check ${offline[@]+"${offline[@]}"} "uv==$UV_VERSION"
    index_args=()
    if [[ ${#offline[@]} -gt 0 ]]; then
      index_args=("${offline[@]}")
    else
      while IFS= read -r arg; do index_args+=("$arg"); done < <("$PY" scripts/uv_index_args.py)
    fi
    echo "installing requirements.lock with uv $UV_VERSION into $VENV"
    "$VENV/bin/uv" pip install --quiet --python "$PY" --compile-bytecode ${index_args[@]+"${index_args[@]}"} \
      -r requirements.lock
    "$VENV/bin/uv" pip install --quiet --python "$PY" ${offline[@]+"${offline[@]}"} --no-deps -e .
    ;;
  pip)
    echo "installing requirements.lock with pip into $VENV"
    "$PY" -m pip install --quiet ${offline[@]+"${offline[@]}"} --upgrade "pip>=24"
    "$PY" -m pip install --quiet ${offline[@]+"${offline[@]}"} -r requirements.lock
    "$PY" -m pip install --quiet ${offline[@]+"${offline[@]}"} --no-deps -e .
    ;;
  *)
    echo "INSTALLER=$INSTALLER: use uv or pip" >&2
    exit 1
    ;;
esac
"$PY" -m pip check
"$PY" -m mlops_helpers.course install-kernel
echo "set up $VENV with Python $(venv_version) in $((SECONDS - started)) s"
