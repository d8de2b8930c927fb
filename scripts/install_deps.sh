#!/usr/bin/env bash
# Installs the Debian 12 packages the build, the tests and the demo need. Idempotent: apt runs
# only when a package is missing. Must run as root (apt-get).
set -euo pipefail

packages=(
  build-essential cmake pkg-config ccache git xz-utils python3 gnuplot-nox
  libyaml-dev libgtest-dev
  libtorch-dev
  libopenblas0-openmp   # without it Debian's libtorch runs matmuls 20-40x slower (docs/design.md#environment)
  libopenmpi-dev openmpi-bin
  clang libclang-rt-14-dev   # libFuzzer and sanitizers for the builder's fuzz target
  debian-archive-keyring     # verifies the LAMMPS source package
  python3-ase                # the ASE calculator's tests (python/klay_ase)
  libkim-api-dev xxd         # the OpenKIM model driver (kim/) and LAMMPS's KIM package; xxd embeds
                             # a KIM model's parameter files in its library
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install_deps.sh: these packages are missing and installing them needs root: ${missing[*]}" >&2
    exit 1
  fi
  echo "Installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "Dependencies present (BLAS: $(update-alternatives --query libblas.so.3-x86_64-linux-gnu 2>/dev/null | sed -n 's/^Value: //p'))"
