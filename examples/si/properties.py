#!/usr/bin/env python3
"""Crystal properties of diamond silicon for several LAMMPS potentials, side by side.

For each potential (a label, a pair_style line and a pair_coeff line; by default the KLay model of
this folder and Stillinger-Weber from the LAMMPS source) one LAMMPS run computes on a periodic
cell of CELLS^3 conventional diamond cells (default 2: 64 atoms, wider than the model's ghost
cutoff):
  a0    lattice constant at zero pressure (fix box/relax iso, then a final pressure check)
  Ecoh  cohesive energy E(isolated atom) - E(bulk)/atom at a0; the isolated atom sits alone in a
        30 Å periodic box (0 for SW, not for a machine-learned model)
  C11, C12 from the stresses of a uniaxial strain exx = +-0.5 %
  C44   from the shear stress of an engineering shear gyz = +-0.5 %; atoms relaxed by minimize
        at fixed cell, because diamond's two sublattices shift against each other under shear
Stresses are LAMMPS pressure components with the sign flipped, central differences in strain.
The table ends with the relative difference of each potential to the reference (default: sw).
Published SW values (Stillinger & Weber 1985; Cowley 1988): a0 5.431 Å, Ecoh 4.3366 eV,
C11 151, C12 76, C44 56 GPa.

  ./properties.py                                  # model.yaml/model.pth vs sw
  ./properties.py --potential soft "pair_style klay" "pair_coeff * * ../soft_sphere/model.yaml ../soft_sphere/no_parameters.safetensors Si" --potential sw "pair_style sw" "pair_coeff * * SW Si" --json out.json
In pair_coeff, SW stands for the path of the LAMMPS source's potentials/Si.sw.
"""
import argparse
import json
import pathlib
import sys
import tempfile

import lammps_driver as lmp_driver

STRAIN = 0.005
ISOLATED_ATOM_BOX = 30.0  # Å
PROPERTIES = [  # key, label, unit, format
    ("a0", "lattice constant a0", "Å", "{:.4f}"),
    ("ecoh", "cohesive energy", "eV/atom", "{:.4f}"),
    ("c11", "C11", "GPa", "{:.1f}"),
    ("c12", "C12", "GPa", "{:.1f}"),
    ("c44", "C44 (relaxed)", "GPa", "{:.1f}"),
]


def crystal(lattice_constant, cells, pair_style, pair_coeff):
    return lmp_driver.diamond_crystal(lattice_constant, cells) + f"""
{pair_style}
{pair_coeff}
thermo_style    custom step pe press pxx pyy pzz pxy pxz pyz lx
thermo_modify   format float %.10g"""


def properties_input(cells, pair_style, pair_coeff):
    """LAMMPS input printing 'RESULT name value' lines (energies eV, lengths Å, stresses bar)."""
    lines = [crystal(5.431, cells, pair_style, pair_coeff), f"""
fix             relax all box/relax iso 0.0 vmax 0.001
minimize        0 1e-12 10000 100000
unfix           relax
run             0
variable        a0 equal $(lx/{cells}:%.12f)
print           "RESULT a0 ${{a0}}"
print           "RESULT bulk_energy_per_atom $(pe/atoms:%.12f)"
print           "RESULT residual_pressure $(press:%.6f)"

clear
units           metal
atom_style      atomic
boundary        p p p
region          box block 0 {ISOLATED_ATOM_BOX} 0 {ISOLATED_ATOM_BOX} 0 {ISOLATED_ATOM_BOX}
create_box      1 box
create_atoms    1 single {ISOLATED_ATOM_BOX / 2} {ISOLATED_ATOM_BOX / 2} {ISOLATED_ATOM_BOX / 2} units box
mass            1 {lmp_driver.SI_MASS}
{pair_style}
{pair_coeff}
run             0
print           "RESULT isolated_atom_energy $(pe:%.12f)"
"""]
    strains = {"xx": "x final 0 $(lx*{stretch})", "yz": "yz final $(lz*{tilt})"}
    for name, change in strains.items():
        for sign_name, strain in (("plus", STRAIN), ("minus", -STRAIN)):
            lines.append(crystal("${a0}", cells, pair_style, pair_coeff))
            lines.append(f"""
change_box      all {change.format(stretch=1 + strain, tilt=strain)} remap units box
minimize        0 1e-12 10000 100000
run             0
print           "RESULT stress_{name}_{sign_name} $(-pxx:%.10f) $(-pyy:%.10f) $(-pzz:%.10f) $(-pyz:%.10f)"
""")
    return "\n".join(lines)


def parse_results(log):
    results = {}
    for line in log.splitlines():
        if line.startswith("RESULT "):
            name, *values = line.split()[1:]
            results[name] = [float(v) for v in values]
    return results


def compute_properties(lmp, ranks, cells, pair_style, pair_coeff, workdir, name):
    log = lmp_driver.run_lammps(lmp, properties_input(cells, pair_style, pair_coeff), workdir, name, ranks)
    results = parse_results(log)
    to_gpa = lmp_driver.BAR_TO_GPA / (2 * STRAIN)
    xx_plus, xx_minus = results["stress_xx_plus"], results["stress_xx_minus"]
    yz_plus, yz_minus = results["stress_yz_plus"], results["stress_yz_minus"]
    return {
        "a0": results["a0"][0],
        "ecoh": results["isolated_atom_energy"][0] - results["bulk_energy_per_atom"][0],
        "c11": (xx_plus[0] - xx_minus[0]) * to_gpa,
        # yy and zz are equivalent for cubic symmetry; averaging them halves rounding noise.
        "c12": ((xx_plus[1] - xx_minus[1]) + (xx_plus[2] - xx_minus[2])) / 2 * to_gpa,
        "c44": (yz_plus[3] - yz_minus[3]) * to_gpa,
        "residual_pressure_bar": results["residual_pressure"][0],
        "isolated_atom_energy": results["isolated_atom_energy"][0],
    }


def print_table(table, reference):
    labels = list(table)
    others = [label for label in labels if label != reference] if reference in table else []
    header = f"{'property':<22}{'unit':<9}" + "".join(f"{label:>12}" for label in labels)
    header += "".join(f"{label + ' vs ' + reference:>18}" for label in others)
    print(header)
    print("-" * len(header))
    for key, name, unit, number_format in PROPERTIES:
        row = f"{name:<22}{unit:<9}" + "".join(f"{number_format.format(table[label][key]):>12}" for label in labels)
        row += "".join(f"{relative_difference(table[label][key], table[reference][key]):>+17.2f}%" for label in others)
        print(row)
    print("pressure left at a0 after box/relax (bar): "
          + ", ".join(f"{label} {table[label]['residual_pressure_bar']:.3g}" for label in labels))


def relative_difference(value, reference):
    return 100.0 * (value - reference) / reference


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--potential", nargs=3, action="append", metavar=("LABEL", "PAIR_STYLE", "PAIR_COEFF"),
                        help="a potential to compare (repeatable); default: the KLay model of this folder and sw")
    parser.add_argument("--reference", default="sw", help="label the others are compared with (default: %(default)s)")
    parser.add_argument("--lmp", default=str(lmp_driver.DEFAULT_LMP))
    parser.add_argument("--lammps-src", help="LAMMPS source tree holding potentials/Si.sw")
    parser.add_argument("--ranks", type=int, default=1, help="MPI ranks per LAMMPS run")
    parser.add_argument("--cells", type=int, default=2, help="conventional cells per edge (default: %(default)s)")
    parser.add_argument("--json", help="also write the numbers to this JSON file")
    args = parser.parse_args()

    sw_file = lmp_driver.sw_potential_file(args.lmp, args.lammps_src)
    potentials = args.potential or [
        ("model", "pair_style klay", f"pair_coeff * * {lmp_driver.HERE / 'model.yaml'} {lmp_driver.HERE / 'model.pth'} Si"),
        ("sw", "pair_style sw", "pair_coeff * * SW Si"),
    ]
    table = {}
    with tempfile.TemporaryDirectory() as workdir:
        for label, pair_style, pair_coeff in potentials:
            pair_coeff = " ".join(str(sw_file) if word == "SW" else absolute_if_file(word) for word in pair_coeff.split())
            table[label] = compute_properties(args.lmp, args.ranks, args.cells, pair_style, pair_coeff, workdir, label)
    print_table(table, args.reference)
    if args.json:
        summary = {"potentials": table, "reference": args.reference,
                   "relative_difference_percent": {
                       label: {key: relative_difference(values[key], table[args.reference][key]) for key, *_ in PROPERTIES}
                       for label, values in table.items() if label != args.reference and args.reference in table}}
        pathlib.Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


def absolute_if_file(word):
    """LAMMPS runs in a scratch folder, so files named relative to the caller's folder are resolved."""
    path = pathlib.Path(word)
    return str(path.resolve()) if path.exists() and not path.is_absolute() else word


if __name__ == "__main__":
    sys.exit(main())
