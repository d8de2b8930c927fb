#!/usr/bin/env bash
# Fuzz the YAML front end (load + interpolation + validation + plan) with libFuzzer under
# AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer.
#   scripts/fuzz_builder.sh [SECONDS]      (default 600)
# Builds build-fuzz/ with clang, seeds a corpus from shared/conformance/*/*.yaml and
# shared/klay_examples/*.yaml, and runs niced on one core. Crashes and leaks are written to
# build-fuzz/artifacts/ and make the script fail.
set -euo pipefail

seconds="${1:-600}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
shared="${KLAY_SHARED_DIR:-$root/../shared}"
build="${KLAY_FUZZ_BUILD_DIR:-$root/build-fuzz}"

CC=clang CXX=clang++ cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DKLAY_WITH_TORCH=OFF -DKLAY_BUILD_TESTS=OFF -DKLAY_FUZZ=ON -DKLAY_SANITIZE=ON \
  -DCMAKE_C_FLAGS="-fsanitize=fuzzer-no-link" >/dev/null
nice cmake --build "$build" -j2 --target fuzz_builder

corpus="$build/corpus"
mkdir -p "$corpus" "$build/artifacts"
for file in "$shared"/conformance/*/*.yaml "$shared"/klay_examples/*.yaml "$root"/tests/builder/bad/*.yaml; do
  [ -f "$file" ] || continue
  cp "$file" "$corpus/seed_$(echo "$file" | md5sum | cut -c1-12).yaml"
done

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
nice "$build/builder/fuzz_builder" "$corpus" -max_total_time="$seconds" -max_len=8192 -timeout=10 \
  -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$build/artifacts/"
