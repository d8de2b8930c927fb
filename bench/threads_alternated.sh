#!/usr/bin/env bash
# `pair_style klay threads 2` against `threads 1`, and float32 against float64, on one rank, in
# alternated runs, so that the VM's slow spells (a fifth of its speed, for minutes at a time, and
# harder on 2 threads) fall on all of them: one pair of single runs, as bench/speed.sh takes, can
# read 1.5x or 2.9x for the same build. Each round runs float64 on 1 thread, float64 on 2 threads
# and float32 on 1 thread, each one `klay bench speed` of the examples/si model (its LAMMPS set-up:
# 5 steps of warm-up, 30 timed) on 512 or 4,096 atoms; one line per run, "atoms threads ms/step
# dtype", to OUT/threads_alternated.txt (bench/issue14_summary.py takes medians).
#
#   bench/threads_alternated.sh [ROUNDS_512 [ROUNDS_4096]]    # default 6 and 3 rounds, about 2 minutes
#
# Environment: BUILD (build folder with klay and lmp, default build), OUT (results folder).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD:-$root/build}"
out="${OUT:-$root/bench/results/issue14}"
mkdir -p "$out"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
results="$out/threads_alternated.txt"
echo "# atoms threads ms/step dtype; $(date -u '+%d %b %Y %H:%M') UTC, $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')" > "$results"

run() {  # atoms threads dtype -> ms per step of the timed steps
  TMPDIR="$work" "$build/klay" bench speed "$root/examples/si/model.yaml" "$root/examples/si/model.pth" --elements Si \
    --sizes "$1" --ranks 1 --dtype "$3" --threads "$2" --steps 30 --warmup 5 --lmp "$build/lmp" \
    --json "$work/run.json" > /dev/null  # its inputs and logs in $work too, removed on exit
  python3 -c 'import json, sys; print("%.3f" % json.load(open(sys.argv[1]))["runs"][0]["ms_per_step"])' "$work/run.json"
}

for size in "512:${1:-6}" "4096:${2:-3}"; do
  atoms=${size%%:*} rounds=${size#*:}
  for ((round = 0; round < rounds; round++)); do
    for config in "1 float64" "2 float64" "1 float32"; do
      read -r threads dtype <<< "$config"
      echo "$atoms $threads $(run "$atoms" "$threads" "$dtype") $dtype" >> "$results"
    done
  done
done
cat "$results"
