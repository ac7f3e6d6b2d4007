#!/usr/bin/env bash
# Find the Python the course runs on (called by `make setup`, `make lock` and .ci/run).
#
#   scripts/find_python.sh            the newest supported Python found: 3.13, else 3.12, else 3.11
#   scripts/find_python.sh 3.11       a Python 3.11 only
#   scripts/find_python.sh PATH|NAME  check that interpreter (what `make setup PYTHON=...` passes)
#
# It looks for python3.13, python3.12, python3.11 and python3 on PATH, then in pyenv's versions folder
# ($PYENV_ROOT/versions, default ~/.pyenv/versions), and runs each candidate: a pyenv shim that refuses because the
# version is not selected is skipped (its interpreter is still found in the versions folder). Prints the
# interpreter's path on stdout, and on stderr which one it chose; exits 1 with how to get one when none fits.
# Plain bash 3.2 (macOS's /bin/bash): no associative arrays, no mapfile.
set -uo pipefail

SUPPORTED=(3.13 3.12 3.11)  # newest first; keep in step with mlops_helpers/environment.py SUPPORTED_PYTHONS
MIN_PATCH_3_11=5            # soupsieve 4.1.3 (in requirements.lock) requires Python >= 3.11.5
PYENV_DIR=${PYENV_ROOT:-$HOME/.pyenv}
NAMES="3.11, 3.12 or 3.13"

rejected=()

# The X.Y.Z of an interpreter, or nothing if it does not run (a refusing pyenv shim, a broken link).
version_of() {
  "$1" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null
}

# Whether X.Y.Z is one the course runs on (sets $why when not).
acceptable() {
  local version=$1 minor=${1%.*} patch=${1##*.}
  why=""
  if [[ " ${SUPPORTED[*]} " != *" $minor "* ]]; then
    why="Python $version is not supported (the course runs on $NAMES)"
  elif [[ $minor == 3.11 && $patch -lt $MIN_PATCH_3_11 ]]; then
    why="Python $version is too old: the pinned packages need 3.11.$MIN_PATCH_3_11 or newer"
  fi
  [[ -z $why ]]
}

# Candidates for one minor version, in the order they are tried.
candidates() {
  local minor=$1
  type -ap "python$minor" "python3" 2>/dev/null
  if [[ -d $PYENV_DIR/versions ]]; then
    # shellcheck disable=SC2012  # version folder names, newest patch first
    ls -d "$PYENV_DIR/versions/$minor".* 2>/dev/null | sort -rV | sed "s|\$|/bin/python$minor|"
  fi
}

how_to_get_one() {
  cat >&2 <<EOF
Install Python $NAMES and run the command again (make setup finds it on PATH or in ~/.pyenv/versions):
  Ubuntu 24.04:         sudo apt install python3.12 python3.12-venv
  Debian 13:            sudo apt install python3.13 python3.13-venv
  macOS (Homebrew):     brew install python@3.13
  any system (pyenv):   pyenv install 3.13
or name an interpreter: make setup PYTHON=/path/to/python3.13
EOF
}

choose() {  # $1: the minor versions to try, newest first
  local minor cand version
  for minor in $1; do
    while IFS= read -r cand; do
      [[ -n $cand && -x $cand ]] || continue
      version=$(version_of "$cand") || version=""
      if [[ -z $version ]]; then  # a refusing pyenv shim is no news; anything else is worth saying
        [[ $cand == */shims/* || " ${rejected[*]-} " == *" $cand does not run "* ]] || rejected+=("$cand does not run")
        continue
      fi
      [[ ${version%.*} == "$minor" ]] || continue  # python3 of another version: tried under its own minor
      if acceptable "$version"; then
        echo "Python $version at $cand" >&2
        echo "$cand"
        return 0
      fi
      rejected+=("$cand: $why")
    done < <(candidates "$minor")
  done
  return 1
}

arg=${1:-}
if [[ -z $arg ]]; then
  choose "${SUPPORTED[*]}" && exit 0
  echo "No Python $NAMES found (looked on PATH and in $PYENV_DIR/versions)." >&2
elif [[ $arg =~ ^3\.[0-9]+$ ]]; then
  choose "$arg" && exit 0
  echo "No Python $arg found (looked on PATH and in $PYENV_DIR/versions)." >&2
elif [[ $arg =~ ^python(3\.[0-9]+)$ ]] && ! version_of "$arg" >/dev/null; then
  # a name such as python3.12 that is not on PATH or is a refusing pyenv shim: look for that version as above
  choose "${BASH_REMATCH[1]}" && exit 0
  echo "PYTHON=$arg: no such interpreter runs (looked on PATH and in $PYENV_DIR/versions)." >&2
else
  path=$(type -P "$arg" 2>/dev/null || true)
  if [[ -z $path ]]; then
    echo "PYTHON=$arg: no such interpreter." >&2
  elif ! version=$(version_of "$path") || [[ -z $version ]]; then
    echo "PYTHON=$arg ($path) does not run." >&2
    [[ $path == */shims/* ]] &&
      echo "  a pyenv shim of a version not selected: name the interpreter in $PYENV_DIR/versions/ by its full path" >&2
  elif acceptable "$version"; then
    echo "Python $version at $path" >&2
    echo "$path"
    exit 0
  else
    echo "PYTHON=$arg: $why." >&2
  fi
fi
for line in ${rejected[@]+"${rejected[@]}"}; do echo "  skipped $line" >&2; done
how_to_get_one
exit 1
