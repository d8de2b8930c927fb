#!/usr/bin/env python3
"""The MD demo: in.md.lmp with the model and with SW, then si_md.png with gnuplot (plot.gp).

Prints the model run's thermo table (and pair style klay's timing when it is there), then the
path of the plot. Outputs go to --out (default: out/ next to this script):
thermo_LABEL.dat, rdf_LABEL.dat, LABEL.log and si_md.png.

  ./md.py [--ranks 2] [--nvt-steps 500] [--nve-steps 500]
  ./md.py --model-pair my_pair.lmp --label soft     # any pair definition (LAMMPS commands)
"""
import argparse
import pathlib
import subprocess
import sys

import lammps_driver as lmp_driver

MD_INPUT = lmp_driver.HERE / "in.md.lmp"


def run_md(args, label, pair_file, sw_file, ranks, nve_steps):
    """Runs in.md.lmp in args.out; returns the LAMMPS log."""
    variables = {"here": lmp_driver.HERE, "pair": label, "pair_file": pathlib.Path(pair_file).resolve(),
                 "sw_potential": sw_file, "nvt_steps": args.nvt_steps, "nve_steps": nve_steps,
                 "thermo_every": args.thermo_every, "rdf_cutoff": args.rdf_cutoff}
    return lmp_driver.run_lammps_file(args.lmp, MD_INPUT, args.out, label, ranks, variables)


def thermo_tables(log):
    """The thermo tables of a LAMMPS log (header line to 'Loop time')."""
    lines, inside = [], False
    for line in log.splitlines():
        if line.split()[:2] == ["Step", "Time"]:
            inside = True
        elif line.startswith("Loop time"):
            inside = False
            lines.append("")
        if inside:
            lines.append(line)
    return "\n".join(lines)


def klay_timing(log):
    """pair style klay's timing block of the last run (the NVE part), or "" for other styles."""
    lines = log.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("Pair style klay timing")]
    if not starts:
        return ""
    start = starts[-1]
    end = start + 1
    while end < len(lines) and lines[end].startswith("  "):
        end += 1
    return "\n".join(lines[start:end])


def add_md_arguments(parser, nve_steps):
    parser.add_argument("--lmp", default=str(lmp_driver.DEFAULT_LMP))
    parser.add_argument("--lammps-src", help="LAMMPS source tree holding potentials/Si.sw")
    parser.add_argument("--ranks", type=int, default=2, help="MPI ranks of the model run (default: %(default)s)")
    parser.add_argument("--nvt-steps", type=int, default=500)
    parser.add_argument("--nve-steps", type=int, default=nve_steps)
    parser.add_argument("--thermo-every", type=int, default=10)
    parser.add_argument("--rdf-cutoff", type=float, default=5.0,
                        help="Å; at most the model's stages x cutoff (its ghost atom range minus the skin)")
    parser.add_argument("--model-pair", default=str(lmp_driver.HERE / "pair_model.lmp"),
                        help="LAMMPS commands defining the model's potential (default: %(default)s)")
    parser.add_argument("--label", default="model", help="name of the model in files and plots")
    parser.add_argument("--out", default=str(lmp_driver.HERE / "out"))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_md_arguments(parser, nve_steps=500)
    parser.add_argument("--reference-pair", default=str(lmp_driver.HERE / "pair_sw.lmp"))
    parser.add_argument("--reference-label", default="sw")
    args = parser.parse_args()

    sw_file = lmp_driver.sw_potential_file(args.lmp, args.lammps_src)
    pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    log = run_md(args, args.label, args.model_pair, sw_file, args.ranks, args.nve_steps)
    print(thermo_tables(log))
    timing = klay_timing(log)
    if timing:
        print(timing)
    run_md(args, args.reference_label, args.reference_pair, sw_file, 1, args.nve_steps)

    output = pathlib.Path(args.out) / "si_md.png"
    script = f"label='{args.label}'; reference='{args.reference_label}'; output='{output.name}'"
    result = subprocess.run(["gnuplot", "-e", script, str(lmp_driver.HERE / "plot.gp")], cwd=args.out,
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"gnuplot failed:\n{result.stderr}")
    print(f"plot: {output.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
