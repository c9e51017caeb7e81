#!/usr/bin/env bash
# Set-up command 2: install the test extras (PyTorch CPU build, Ray, Playwright, Debian's
# chromium when run as root), fetch the small U2NetP model, run the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# torch==2.13.0 first, on its own: it is the CPU build this machine keeps on disk;
# resolving it together with other packages could pull a multi-GB CUDA build.
.venv/bin/python -m pip install --quiet --disable-pip-version-check 'torch==2.13.0'
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[server,matting,torch,ray,test]'
# Reference implementations the torch tests compare against: transparent-background's network
# code only (--no-deps: its declared deps would pull torchvision and a second OpenCV) and kornia.
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps 'transparent-background==1.3.4'
.venv/bin/python -m pip install --quiet --disable-pip-version-check 'kornia==0.9.0'
.venv/bin/bgclear models pull u2netp
if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; browser tests will be skipped" >&2
fi
exec .venv/bin/python -m pytest -q "$@"
