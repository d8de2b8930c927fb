#!/usr/bin/env bash
# MD speed of a KLay model under pair_style klay on 512…32,768-atom diamond silicon with 1 and 2
# MPI ranks, with the cost of staged graphs against feeding every stage the largest graph and the
# Stillinger-Weber baseline, all measured in one invocation of `klay bench speed` (README.md here).
#
#   bench/speed.sh                                   # examples/si model, results in bench/results/
#   bench/speed.sh MODEL.yaml WEIGHTS [klay bench speed options...]   # later options win
#
# Environment: BUILD (build folder with klay and lmp, default build), OUT (results folder).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD:-$root/build}"
out="${OUT:-$root/bench/results}"
model="$root/examples/si/model.yaml"
weights="$root/examples/si/model.pth"
if [[ $# -ge 2 && $1 != -* ]]; then
  model="$1" weights="$2"
  shift 2
fi

# The sw potential file ships with the LAMMPS source that scripts/get_lammps.sh built.
eval "$("$root/scripts/get_lammps.sh" | tail -n 2)"
mkdir -p "$out"
exec "$build/klay" bench speed "$model" "$weights" --elements Si \
  --sizes 512,4096,32768 --ranks 1,2 --compare-largest-graph \
  --baseline "pair_style sw; pair_coeff * * $LAMMPS_SOURCE_DIR/potentials/Si.sw Si" \
  --lmp "$build/lmp" --json "$out/speed.json" --plot "$out/speed.png" "$@"
