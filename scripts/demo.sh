#!/usr/bin/env bash
# The README's main command: installs what is missing (apt, as root), builds LAMMPS once (cached
# outside the tree), the runtime, the `klay` tool and the KLAY plugin, then shows the silicon
# example (examples/si): the fitted model's errors on held-out Stillinger-Weber data, molecular
# dynamics on 2 MPI ranks with the thermo table, crystal properties of the model and of SW
# computed in the same run, and a PNG plot. Idempotent: a second run only re-runs the example.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KLAY_BUILD_DIR:-$root/build}
jobs=${KLAY_JOBS:-$(nproc)}

bash "$root/scripts/install_deps.sh"
source "$root/scripts/configure.sh"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release "${KLAY_CMAKE_ARGS[@]}" >/dev/null
cmake --build "$build" -j"$jobs" --target klay_cli klay_lammps

example=$root/examples/si
out=$build/demo
mkdir -p "$out"
export OMP_NUM_THREADS=1
start=$(date +%s)

echo
echo "== The model: examples/si/model.yaml, a 2-stage NequIP-style KLay model fitted to SW silicon =="
"$build/klay" validate "$example/model.yaml" | head -n 3
echo
echo "== Errors on 71 held-out SW configurations (klay bench accuracy) =="
"$build/klay" bench accuracy "$example/model.yaml" "$example/model.pth" "$example/data/test.xyz" \
  --json "$out/accuracy.json" --plot "$out/parity.png"
echo
echo "== Molecular dynamics: 512 atoms, NVT at 300 K then NVE, pair_style klay on 2 MPI ranks =="
/usr/bin/python3 "$example/md.py" --lmp "$build/lmp" --lammps-src "$LAMMPS_SOURCE_DIR" --ranks 2 \
  --nvt-steps 300 --nve-steps 300 --out "$out"
echo
echo "== Crystal properties: the model and pair_style sw in the same run =="
/usr/bin/python3 "$example/properties.py" --lmp "$build/lmp" --lammps-src "$LAMMPS_SOURCE_DIR" \
  --json "$out/properties.json"
echo
echo "Plot (energy and temperature vs time; g(r) model vs SW): $out/si_md.png"
echo "Parity plots of the held-out errors: $out/parity.png"
echo "Example finished in $(( $(date +%s) - start )) s."
