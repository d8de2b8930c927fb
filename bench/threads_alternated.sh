#!/usr/bin/env bash
# `pair_style klay threads 2` against `threads 1`, float32 against float64, and the cost per atom
# of 4,096 and 32,768 atoms against 512, on one rank, in alternated runs, so that the VM's slow
# spells (a fifth of its speed, for minutes at a time, and harder on 2 threads) fall on all of
# them: one pair of single runs, as bench/speed.sh takes, can read 1.5x or 2.9x for the same build.
# Each round runs float64 on 1 thread, float64 on 2 threads and float32 on 1 thread (32,768 atoms:
# float64 and float32 on 1 thread), each one `klay bench speed` of the examples/si model (its LAMMPS
# set-up: 5 steps of warm-up, 30 timed) on 512, 4,096 or 32,768 atoms; float64 on 1 thread also
# runs pair_style sw on the same atoms in the same invocation, for the ratio to it. One line per
# run, "atoms threads ms/step dtype [ratio to sw]", to OUT/threads_alternated.txt
# (bench/issue14_summary.py takes medians).
#
#   bench/threads_alternated.sh [ROUNDS_512 [ROUNDS_4096 [ROUNDS_32768]]]
#                                # default 6, 3 and 2 rounds, about 5 minutes
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
echo "# atoms threads ms/step dtype [ratio to sw]; $(date -u '+%d %b %Y %H:%M') UTC, $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')" > "$results"

# The sw potential file ships with the LAMMPS source that scripts/get_lammps.sh built.
eval "$("$root/scripts/get_lammps.sh" | tail -n 2)"
sw="pair_style sw; pair_coeff * * $LAMMPS_SOURCE_DIR/potentials/Si.sw Si"

run() {  # atoms threads dtype -> "ms/step dtype [ratio]" of klay's timed steps
  local baseline=()
  [[ $2 == 1 && $3 == float64 ]] && baseline=(--baseline "$sw")
  TMPDIR="$work" "$build/klay" bench speed "$root/examples/si/model.yaml" "$root/examples/si/model.pth" --elements Si \
    --sizes "$1" --ranks 1 --dtype "$3" --threads "$2" --steps 30 --warmup 5 --lmp "$build/lmp" "${baseline[@]}" \
    --json "$work/run.json" > /dev/null  # its inputs and logs in $work too, removed on exit
  python3 -c '
import json, sys
run = next(r for r in json.load(open(sys.argv[1]))["runs"] if r["series"].startswith("klay"))
ratio = run["ratio_to_baseline"]
print("%.3f %s%s" % (run["ms_per_step"], sys.argv[2], " %.3f" % ratio if ratio else ""))' "$work/run.json" "$3"
}

for size in "512:${1:-6}" "4096:${2:-3}" "32768:${3:-2}"; do
  atoms=${size%%:*} rounds=${size#*:}
  configs=("1 float64" "2 float64" "1 float32")
  [[ $atoms == 32768 ]] && configs=("1 float64" "1 float32")
  for ((round = 0; round < rounds; round++)); do
    for config in "${configs[@]}"; do
      read -r threads dtype <<< "$config"
      echo "$atoms $threads $(run "$atoms" "$threads" "$dtype")" >> "$results"
    done
  done
done
cat "$results"
