#!/usr/bin/env bash
# Install jaxlt into a virtual environment from nothing.
#   bash launch/install.sh [VENV_DIR] [EXTRAS]
# EXTRAS defaults to "train,test" (everything); use "" for the CPU analysis stage alone,
# "train,cuda" on a GPU machine, "train,tpu" on a TPU VM.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv}
EXTRAS=${2-train,test}
PYTHON=${PYTHON:-python3}

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check -q)
"${PIP[@]}" --upgrade pip wheel "setuptools>=69,<81"
if [[ ",$EXTRAS," == *",test,"* ]]; then
  # CPU build of torch first: an unpinned torch pulls a multi-GB CUDA build.
  "${PIP[@]}" "torch==2.13.0"
fi
if [ -n "$EXTRAS" ]; then
  "${PIP[@]}" -e ".[$EXTRAS]"
else
  "${PIP[@]}" -e .
fi
if [[ ",$EXTRAS," == *",test,"* ]]; then
  # seqeval ships only an sdist whose build breaks with setuptools_scm>=8.
  "${PIP[@]}" "setuptools_scm<8"
  "${PIP[@]}" --no-build-isolation "seqeval==1.2.2"
fi
echo "jaxlt installed in $VENV (extras: ${EXTRAS:-none})"
