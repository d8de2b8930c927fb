#!/usr/bin/env bash
# Every benchmark of issue #14 in one invocation, then a table of its targets against what this run
# measured (bench/issue14_summary.py). Run it on a quiet machine: it prints the load average before
# each part, and a busy machine makes the ratios noise.
#
#   bench/issue14.sh              # results in bench/results/issue14/
#   OUT=DIR BUILD=DIR bench/issue14.sh
#
# Parts (about 7 minutes on this project's 2-core machine; LAMMPS runs 30 timed steps after 5 of
# warm-up, as 10 steps of a few milliseconds each were at the scheduler's mercy):
#   speed_threads1   klay bench speed, examples/si, 512/4,096/32,768 atoms, float64 and float32,
#                    1 rank, 1 thread, Stillinger-Weber baseline
#   speed_threads2   the same at 512 and 4,096 atoms, float64, 2 threads
#   threads          bench/threads_alternated.sh: threads 1 and 2, float64 and float32, and the
#                    ratio to sw at 512, 4,096 and 32,768 atoms, in alternated rounds of LAMMPS runs
#                    (one pair of single runs is at the mercy of the VM's slow spells)
#   md_step          bench_md_step: one force evaluation, float64 / float32 / composite interleaved
#   torchscript      bench_native_vs_torchscript --copies 200: each conformance layer against
#                    Python KLay's TorchScript, forward and forward+backward
#   kernels          bench_layers --filter kernel: the fused convolution's rate against the matmul,
#                    alone and with the radial MLP in the same kernel
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${BUILD:-$root/build}"
out="${OUT:-$root/bench/results/issue14}"
mkdir -p "$out"

part() {
  echo "== $1 ($(date -u +%H:%M:%S) UTC, load average $(cut -d' ' -f1-3 /proc/loadavg))"
}

part speed_threads1
OUT="$out" "$root/bench/speed.sh" --sizes 512,4096,32768 --ranks 1 --dtype float64,float32 --threads 1 \
  --steps 30 --warmup 5 --json "$out/speed_threads1.json" --plot "$out/speed_threads1.png" \
  > "$out/speed_threads1.txt" 2>&1
part speed_threads2
OUT="$out" "$root/bench/speed.sh" --sizes 512,4096 --ranks 1 --dtype float64 --threads 2 \
  --steps 30 --warmup 5 --json "$out/speed_threads2.json" --plot "$out/speed_threads2.png" \
  > "$out/speed_threads2.txt" 2>&1
part threads
OUT="$out" BUILD="$build" "$root/bench/threads_alternated.sh" > "$out/threads_alternated.log" 2>&1
part md_step
"$build/bench/bench_md_step" --cells 4 --threads 1 --rounds 15 > "$out/md_step.txt" 2>&1
part torchscript
"$build/bench/bench_native_vs_torchscript" --threads 1 --copies 200 > "$out/torchscript.txt" 2>&1
part kernels
"$build/bench/bench_layers" --threads 1 --filter kernel > "$out/kernels.txt" 2>&1
part summary
python3 "$root/bench/issue14_summary.py" "$out" | tee "$out/summary.txt"
