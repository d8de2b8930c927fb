#!/usr/bin/env bash
# Times `klay validate` (load + interpolation + validation + plan) on a generated 2,000-layer model
# (bench/gen_chain_model.py: a chain with aliases and interpolations). Must stay well under 1 s.
#   bench/validate_bench.sh [LAYERS] [VALIDATOR]
# VALIDATOR defaults to the `klay` tool (as `klay validate`) if built, else the builder's test driver.
set -euo pipefail

layers="${1:-2000}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${KLAY_BUILD_DIR:-$root/build-builder}"
if [ $# -ge 2 ]; then
  validate=("$2")
elif [ -x "$build/klay" ]; then
  validate=("$build/klay" validate)
else
  validate=("$build/tests/builder/klay_validate_driver")
fi

model="$(mktemp --suffix=.yaml)"
trap 'rm -f "$model"' EXIT
python3 "$root/bench/gen_chain_model.py" "$layers" "$model"
echo "model: $layers layer calls, $(wc -l <"$model") lines; validator: ${validate[*]}"

best=""
for run in 1 2 3 4 5; do
  start=$(date +%s.%N)
  "${validate[@]}" "$model" >/dev/null
  end=$(date +%s.%N)
  t=$(echo "$end - $start" | bc -l)
  printf 'run %d: %.3f s\n' "$run" "$t"
  if [ -z "$best" ] || [ "$(echo "$t < $best" | bc -l)" = 1 ]; then best=$t; fi
done
printf 'best: %.3f s (limit 1 s)\n' "$best"
if [ "$(echo "$best >= 1" | bc -l)" = 1 ]; then
  echo "validation of $layers layers is too slow" >&2
  exit 1
fi
