#!/bin/sh
# setup.sh - installs what nflow needs on Debian (apt; python3-numpy and
# python3-venv are for the Python package, `make python`, Open MPI for the MPI
# build, `make MPI=1`), builds it and runs the
# main job: trains dataflowr's RealNVP on the two moons and writes the model,
# the figures and runs/moons/report.html.  `./setup.sh --deps-only` installs
# the packages and stops.
set -e
cd "$(dirname "$0")"
PKGS="build-essential clang libclang-rt-dev pkg-config libopenblas-dev libcairo2-dev python3-numpy python3-venv openmpi-bin libopenmpi-dev"
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
missing=
for p in $PKGS; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing
fi
[ "${1:-}" = "--deps-only" ] && exit 0
make -j2
./build/nflow train --data moons --flow "realnvp(layers=6, hidden=[256,256])" --lr 1e-4 --steps 5000 --out runs/moons
