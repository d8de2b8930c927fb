#!/usr/bin/env bash
# `pair_style klay threads 2` against `threads 1` on one rank, in alternated pairs of LAMMPS runs,
# so that the VM's slow spells (a fifth of its speed, for minutes at a time, and harder on 2
# threads) fall on both: one pair of single runs, as bench/speed.sh takes, can read 1.5x or 2.9x
# for the same build. The examples/si model on 512 and 4,096 atoms of diamond silicon, as
# `klay bench speed` sets them up (5 steps of warm-up, 30 timed); one line per run,
# "atoms threads ms/step", to OUT/threads_alternated.txt (bench/issue14_summary.py takes medians).
#
#   bench/threads_alternated.sh [PAIRS_512 [PAIRS_4096]]    # default 6 and 3 pairs, about 1 minute
#
# Environment: BUILD (build folder with lmp, default build), OUT (results folder).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD:-$root/build}"
out="${OUT:-$root/bench/results/issue14}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$out/threads_alternated.txt"
echo "# atoms threads ms/step; $(date -u '+%d %b %Y %H:%M') UTC, $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')" > "$results"

run() {  # cells threads -> ms per step of the timed run
  local cells=$1 threads=$2 input="$work/in.lmp"
  cat > "$input" <<LAMMPS
units metal
atom_style atomic
boundary p p p
lattice diamond 5.431
region box block 0 $cells 0 $cells 0 $cells
create_box 1 box
create_atoms 1 box
mass 1 28.0855
pair_style klay dtype float64 threads $threads
pair_coeff * * $root/examples/si/model.yaml $root/examples/si/model.pth Si
velocity all create 300.0 4928459 loop geom
fix integrate all nve
timestep 0.001
thermo 0
run 5
run 30
LAMMPS
  (cd "$work" && "$build/lmp" -in "$input" -log "$work/log.lammps" -screen none > /dev/null)
  awk '/^Loop time of/ {ms = $4 * 1000 / $9} END {printf "%.3f", ms}' "$work/log.lammps"
}

for size in "4:${1:-6}" "8:${2:-3}"; do
  cells=${size%%:*} pairs=${size#*:}
  for ((pair = 0; pair < pairs; pair++)); do
    for threads in 1 2; do
      echo "$((8 * cells * cells * cells)) $threads $(run "$cells" "$threads")" >> "$results"
    done
  done
done
cat "$results"
