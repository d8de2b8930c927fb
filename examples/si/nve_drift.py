#!/usr/bin/env python3
"""Energy conservation: in.md.lmp with a long NVE part (default 10 ps = 10,000 steps of 1 fs on
512 atoms after 0.5 ps of NVT), then the drift of the total energy per atom over the NVE part:
  max |E(t) - E(0)| / N   and the slope of a least-squares line through E(t)/N (eV/atom/ps).
Exit status 1 when the maximum exceeds --max-drift (default 1e-4 eV/atom, issue #6's bar).

  ./nve_drift.py [--ranks 2] [--model-pair pair_model.lmp] [--nve-steps 10000]
"""
import argparse
import pathlib
import sys

import md


def nve_energies(thermo_path):
    """(time ps, total energy eV/atom) of the NVE rows of a thermo_LABEL.dat."""
    rows = []
    for line in pathlib.Path(thermo_path).read_text().splitlines():
        if line.startswith("#"):
            continue
        _, time, _, _, total_energy, phase = line.split()
        if phase == "1":
            rows.append((float(time), float(total_energy)))
    return rows


def linear_slope(points):
    count = len(points)
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in points)
    variance = sum((x - mean_x) ** 2 for x, _ in points)
    return covariance / variance


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    md.add_md_arguments(parser, nve_steps=10000)
    parser.add_argument("--max-drift", type=float, default=1e-4, help="eV/atom (default: %(default)s)")
    args = parser.parse_args()

    sw_file = md.lmp_driver.sw_potential_file(args.lmp, args.lammps_src)
    pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    label = f"{args.label}_nve"
    log = md.run_md(args, label, args.model_pair, sw_file, args.ranks, args.nve_steps)
    timing = md.klay_timing(log)
    if timing:
        print(timing)

    energies = nve_energies(pathlib.Path(args.out) / f"thermo_{label}.dat")
    start_energy = energies[0][1]
    max_drift = max(abs(energy - start_energy) for _, energy in energies)
    slope = linear_slope(energies)
    duration = energies[-1][0] - energies[0][0]
    print(f"NVE {duration:.2f} ps ({args.nve_steps} steps), {len(energies)} samples: "
          f"max |E(t) - E(0)|/N = {max_drift:.3e} eV/atom, linear drift {slope:+.3e} eV/atom/ps "
          f"({slope * duration:+.3e} eV/atom over the run)")
    if max_drift > args.max_drift:
        print(f"FAIL: drift above {args.max_drift:g} eV/atom")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
