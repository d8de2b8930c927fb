#!/usr/bin/env python3
"""LAMMPS's KIM package running a KLay model through the KLay KIM model driver (`kim init` +
`kim interactions`, i.e. pair_style kim) gives the energy, per-atom energy, forces and virial (and,
for a model with shifts, the per-atom virial) of pair_style klay on the same model, in the same
LAMMPS process: at step 0 and after a few NVE steps (atoms move), on any number of ranks, newton on
or off.

  lammps_kim_case.py --lmp build/lmp --case <shared/conformance/staged_* dir> --kim-model NAME
      [--model model.yaml --weights weights --elements Si]   another model on the case's structure
      [--ranks N] [--newton on|off] [--atom-virial]

Needs KIM_API_CONFIGURATION_FILE pointing at the collection the model is installed in (ctest sets
it). Exit status: 0 pass, 1 fail. Reuses tests/lammps/lammps_case.py's machinery.
"""
import argparse
import math
import os
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lammps"))
from lammps_case import (VIRIAL_REPORT, Case, add_lammps_arguments, compare, pair_commands,  # noqa: E402
                         preamble, read_dump, read_step_report, run_lammps)

STEPS = 10


def run_commands(name, report_tag, atom_virial):
    """Reports energy and virial at step 0 and after STEPS NVE steps, with dumps of forces and
    per-atom energies named after the pair style (`run 0`: pe/atom is tallied only when asked for
    at the run's last step)."""
    stress = " c_stress[*]" if atom_virial else ""
    report = (f'print "{report_tag} {{step}} $(pe:%.17g) {VIRIAL_REPORT}"\n'
              f"write_dump all custom {name}_{{step}}.dump id fx fy fz c_atom_energy{stress} "
              "modify format float %.17g sort id\n")
    return ("compute stress all stress/atom NULL virial\n" if atom_virial else "") + f"""compute atom_energy all pe/atom
compute virial all pressure NULL virial
thermo_style custom step pe ke c_virial[*]
run 0
{report.format(step=0)}
timestep 0.001
fix integrate all nve
run {STEPS}
run 0
{report.format(step=STEPS)}
"""


def write_velocities(path, n):
    """Appends a Velocities section to the data file (A/ps, about 600 K for Si) from a fixed formula
    of the atom id: both pair styles start their dynamics from the same state (`velocity create`
    does not give the same velocities after the two set-ups)."""
    with open(path, "a") as f:
        f.write("\nVelocities\n\n")
        for i in range(1, n + 1):
            f.write(f"{i} " + " ".join(repr(4.0 * math.sin(1.7 * i + 2.3 * k)) for k in range(3)) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_lammps_arguments(parser)  # a LAMMPS with the KIM package and the KLAY plugin
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--case", required=True, help="shared/conformance/staged_* directory: the structure, "
                        "and the model unless --model is given")
    parser.add_argument("--kim-model", required=True, help="the KIM portable model of the same model")
    parser.add_argument("--model", help="KLay YAML for pair_style klay (default: the case's)")
    parser.add_argument("--weights", help="its weights (default: the case's)")
    parser.add_argument("--elements", nargs="+", help="element of each atom type (default: the case's)")
    parser.add_argument("--ranks", type=int, default=1)
    parser.add_argument("--newton", choices=["on", "off"], default="on")
    parser.add_argument("--tolerance", type=float, default=1e-12)
    parser.add_argument("--atom-virial", action="store_true", help="also compare per-atom virials (compute "
                        "stress/atom; the model must take shifts)")
    args = parser.parse_args()
    if not os.environ.get("KIM_API_CONFIGURATION_FILE"):
        print("FAIL: KIM_API_CONFIGURATION_FILE is not set: LAMMPS would not find the build tree's KIM models")
        return 1

    case = Case(args.case)
    model, weights = args.model or case.model, args.weights or case.weights
    elements = args.elements or case.elements
    n = len(case.positions)
    after_preamble = preamble(args.newton).split("\n", 1)[1]   # kim init sets the units
    with tempfile.TemporaryDirectory(prefix="klay_kim_") as workdir:
        case.write_data(workdir)
        write_velocities(os.path.join(workdir, "structure.data"), n)
        output = run_lammps(args, preamble(args.newton) + pair_commands(model, weights, elements)
                            + run_commands("klay", "KLAY_PAIR", args.atom_virial) + f"""
clear
kim init {args.kim_model} metal
{after_preamble}
kim interactions {' '.join(elements)}
""" + run_commands("kim", "KLAY_KIM", args.atom_virial), workdir, args.ranks)
        dumps = {(style, step): read_dump(os.path.join(workdir, f"{style}_{step}.dump"))
                 for style in ("klay", "kim") for step in (0, STEPS)}

    klay, kim = read_step_report(output, "KLAY_PAIR"), read_step_report(output, "KLAY_KIM")
    ok = True
    label = f"{args.ranks} rank(s), newton {args.newton}"
    for step in (0, STEPS):
        (klay_energy, klay_virial), (kim_energy, kim_virial) = klay[str(step)], kim[str(step)]
        klay_dump, kim_dump = dumps[("klay", step)], dumps[("kim", step)]
        at = f"step {step}, {label}"
        ok &= compare(f"kim vs klay: energy, {at}", [kim_energy], [klay_energy], args.tolerance)
        ok &= compare(f"kim vs klay: forces, {at}", [c for i in range(n) for c in kim_dump[i + 1][0:3]],
                      [c for i in range(n) for c in klay_dump[i + 1][0:3]], args.tolerance)
        ok &= compare(f"kim vs klay: per-atom energy, {at}", [kim_dump[i + 1][3] for i in range(n)],
                      [klay_dump[i + 1][3] for i in range(n)], args.tolerance)
        ok &= compare(f"kim vs klay: virial (6 components), {at}", kim_virial, klay_virial, args.tolerance)
        if args.atom_virial:
            ok &= compare(f"kim vs klay: per-atom virial (6 components), {at}",
                          [c for i in range(n) for c in kim_dump[i + 1][4:10]],
                          [c for i in range(n) for c in klay_dump[i + 1][4:10]], args.tolerance)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
