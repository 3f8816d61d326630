#!/usr/bin/env bash
# Installs netlab and everything it needs on a fresh Debian machine (as root):
# Debian packages, a virtualenv in .venv with the CPU build of torch first,
# the project itself, and a `netlab` command on root's PATH.
set -euo pipefail
cd "$(dirname "$0")"

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
    python3 python3-venv python3-dev gcc iproute2 iperf3 procps tshark >/dev/null

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch first, pinned: 2.13.0 is the CPU wheel; an unpinned torch pulls CUDA.
.venv/bin/python -m pip install -q "torch==2.13.0"
.venv/bin/python -m pip install -q -e ".[test,learn]"
ln -sf "$PWD/.venv/bin/netlab" /usr/local/bin/netlab
echo "netlab installed: $(.venv/bin/netlab --version)"
