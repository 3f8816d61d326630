#!/usr/bin/env bash
# Installs netlab and everything it needs on a fresh Debian machine (as root):
# Debian packages, a virtualenv in .venv with the CPU build of torch first,
# the project itself, and a `netlab` command on root's PATH.
#
#   bash install.sh            namespaces (everything `netlab run` needs)
#   bash install.sh --vagrant  the same, plus the VM path (`netlab vagrant`): vagrant,
#                              vagrant-libvirt, libvirt, QEMU, dnsmasq, the box's build
#                              tools, then the VMs' wheels and the box, and a doctor check
#
# BIN_DIR (default /usr/local/bin) is where the `netlab` link goes.
set -euo pipefail
cd "$(dirname "$0")"

VAGRANT=0
for arg in "$@"; do
    case "$arg" in
        --vagrant) VAGRANT=1 ;;
        -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "install.sh: unknown option '$arg'; fix: bash install.sh [--vagrant]" >&2; exit 2 ;;
    esac
done
BIN_DIR=${BIN_DIR:-/usr/local/bin}

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
# Lab children run unprivileged and cannot write bytecode into this root-owned
# checkout: compile it once here so they never recompile on every start.
.venv/bin/python -m compileall -q labcore netlab shaping endpoints >/dev/null
mkdir -p "$BIN_DIR"
ln -sf "$PWD/.venv/bin/netlab" "$BIN_DIR/netlab"
echo "netlab installed: $(.venv/bin/netlab --version)"

if [ "$VAGRANT" = 1 ]; then
    # The package list is netlab's own (netlab/vagrant/doctor.py): what the doctor checks.
    # shellcheck disable=SC2046
    apt-get install -y -qq --no-install-recommends \
        $(.venv/bin/python -m netlab.vagrant.doctor --packages) >/dev/null
    echo "VM packages installed: $(.venv/bin/python -m netlab.vagrant.doctor --packages)"
    # The VMs' numpy/pyroute2 wheels and the netlab/bookworm box (about 2 min, once).
    .venv/bin/netlab vagrant box
    .venv/bin/netlab vagrant doctor
fi
