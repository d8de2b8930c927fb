#!/usr/bin/env python3
"""Checks the labels make_data.py wrote against an independent LAMMPS evaluation (exit 0: pass).

For a sheared thermal snapshot (triclinic cell, all six virial components nonzero) and a liquid
snapshot (taken under a barostat, so the LAMMPS box origin was not zero) it
  1. rebuilds the cell from the extended XYZ (Lattice, positions) as a LAMMPS data file and checks
     that SW gives back the stored energy and forces: the file format round-trips;
  2. checks the virial's sign and units by finite strain. Deforming the cell and the atoms by
     F = 1 + h e_ab changes the energy at the rate dE/dh = sum_i dE/dr_ia r_ib = -sum_i F_ia r_ib,
     so the stored virial (eV, LAMMPS's sum r·F) must equal -(E(+h) - E(-h)) / (2h) for every
     component ab. Upper-triangular F keep the cell in LAMMPS's form (a along x, b in the xy
     plane) and, since the virial is symmetric, still reach all six components.

Tolerances come from the 8 decimals of the file, not from the potential: positions rounded to
5e-9 Å move energies by |F|·5e-9 per atom, and h = 1e-5 leaves a truncation error h^2 E'''/6
far below 1e-6 eV.

  ./check_data.py [--data data/train.xyz] [--lmp ../../build/lmp] [--lammps-src DIR]
"""
import argparse
import pathlib
import re
import sys
import tempfile

import lammps_driver as lmp_driver

STRAIN_STEP = 1e-5
ENERGY_TOLERANCE = 1e-5   # eV
FORCE_TOLERANCE = 1e-5    # eV/Å
VIRIAL_TOLERANCE = 1e-5   # eV; a sign or unit error would be off by O(1-100) eV
# (row, column) of each virial component, in the order of the file's row-major 9 numbers.
COMPONENTS = {"xx": (0, 0), "yy": (1, 1), "zz": (2, 2), "xy": (0, 1), "xz": (0, 2), "yz": (1, 2)}


def read_frames(path):
    lines = pathlib.Path(path).read_text().splitlines()
    frames, line_index = [], 0
    while line_index < len(lines):
        count = int(lines[line_index])
        comment = lines[line_index + 1]
        lattice = [float(v) for v in re.search(r'Lattice="([^"]+)"', comment).group(1).split()]
        virial = [float(v) for v in re.search(r'virial="([^"]+)"', comment).group(1).split()]
        atoms = [line.split() for line in lines[line_index + 2:line_index + 2 + count]]
        frames.append({
            "config_type": re.search(r"config_type=(\S+)", comment).group(1),
            "energy": float(re.search(r"energy=(\S+)", comment).group(1)),
            "cell": [lattice[0:3], lattice[3:6], lattice[6:9]],
            "virial": [virial[0:3], virial[3:6], virial[6:9]],
            "positions": [[float(v) for v in atom[1:4]] for atom in atoms],
            "forces": [[float(v) for v in atom[4:7]] for atom in atoms],
        })
        line_index += 2 + count
    return frames


def deformed(cell, positions, row, column, amount):
    """Cell rows and positions mapped by F = 1 + amount e_(row,column): r -> F r."""
    def apply(vector):
        moved = list(vector)
        moved[row] += amount * vector[column]
        return moved
    return [apply(v) for v in cell], [apply(p) for p in positions]


def data_file_text(cell, positions):
    (lx, ax_y, ax_z), (xy, ly, b_z), (xz, yz, lz) = cell
    if max(abs(ax_y), abs(ax_z), abs(b_z)) > 1e-12:
        sys.exit("the cell is not in LAMMPS form (a along x, b in the xy plane)")
    atoms = "\n".join(f"{i + 1} 1 {x:.12f} {y:.12f} {z:.12f}" for i, (x, y, z) in enumerate(positions))
    return (f"Silicon frame from an extended XYZ file\n\n{len(positions)} atoms\n1 atom types\n\n"
            f"0 {lx:.12f} xlo xhi\n0 {ly:.12f} ylo yhi\n0 {lz:.12f} zlo zhi\n"
            f"{xy:.12f} {xz:.12f} {yz:.12f} xy xz yz\n\nMasses\n\n1 {lmp_driver.SI_MASS}\n\n"
            f"Atoms # atomic\n\n{atoms}\n")


def evaluate(lmp, sw_file, workdir, cells_and_positions):
    """SW energy of each (cell, positions), and the forces of the first, in one LAMMPS run."""
    commands = []
    for index, (cell, positions) in enumerate(cells_and_positions):
        (workdir / f"config_{index}.data").write_text(data_file_text(cell, positions))
        commands.append(f"""
clear
units           metal
atom_style      atomic
boundary        p p p
read_data       config_{index}.data
pair_style      sw
pair_coeff      * * {sw_file} Si
run             0
print           "ENERGY {index} $(pe:%.15g)" append energies.txt screen no""")
        if index == 0:
            commands.append("write_dump      all custom forces.dump id fx fy fz modify sort id format float %.12f")
    (workdir / "energies.txt").unlink(missing_ok=True)
    lmp_driver.run_lammps(lmp, "\n".join(commands) + "\n", workdir, "check")
    energies = [float(line.split()[2]) for line in (workdir / "energies.txt").read_text().splitlines()]
    dump = (workdir / "forces.dump").read_text().splitlines()
    start = next(i for i, line in enumerate(dump) if line.startswith("ITEM: ATOMS")) + 1
    forces = [[float(v) for v in line.split()[1:4]] for line in dump[start:]]
    return energies, forces


def check_frame(lmp, sw_file, workdir, frame):
    cell, positions = frame["cell"], frame["positions"]
    configurations = [(cell, positions)]
    for row, column in COMPONENTS.values():
        for sign in (1, -1):
            configurations.append(deformed(cell, positions, row, column, sign * STRAIN_STEP))
    energies, forces = evaluate(lmp, sw_file, workdir, configurations)

    failures = []
    energy_error = abs(energies[0] - frame["energy"])
    force_error = max(abs(a - b) for stored, lammps in zip(frame["forces"], forces) for a, b in zip(stored, lammps))
    print(f"{frame['config_type']} ({len(positions)} atoms): |E_file - E_lammps| = {energy_error:.2e} eV, "
          f"max |F_file - F_lammps| = {force_error:.2e} eV/Å")
    if energy_error > ENERGY_TOLERANCE:
        failures.append(f"energy differs by {energy_error:.3e} eV")
    if force_error > FORCE_TOLERANCE:
        failures.append(f"forces differ by up to {force_error:.3e} eV/Å")
    for k, (name, (row, column)) in enumerate(COMPONENTS.items()):
        plus, minus = energies[1 + 2 * k], energies[2 + 2 * k]
        finite_strain = -(plus - minus) / (2 * STRAIN_STEP)
        stored = frame["virial"][row][column]
        print(f"  virial {name}: file {stored:+.6f} eV, -dE/de {finite_strain:+.6f} eV, "
              f"difference {stored - finite_strain:+.1e}")
        if abs(stored - finite_strain) > VIRIAL_TOLERANCE:
            failures.append(f"virial {name}: file {stored} eV but -dE/de = {finite_strain} eV")
    return failures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(lmp_driver.HERE / "data" / "train.xyz"))
    parser.add_argument("--lmp", default=str(lmp_driver.DEFAULT_LMP))
    parser.add_argument("--lammps-src")
    args = parser.parse_args()

    sw_file = lmp_driver.sw_potential_file(args.lmp, args.lammps_src)
    frames = read_frames(args.data)
    sheared = next(f for f in frames if f["config_type"] == "strain_thermal"
                   and all(abs(w) > 1e-3 for row in f["virial"] for w in row)
                   and abs(f["cell"][1][0]) + abs(f["cell"][2][0]) + abs(f["cell"][2][1]) > 0)
    liquid = next(f for f in frames if f["config_type"].startswith("liquid"))
    failures = []
    with tempfile.TemporaryDirectory() as workdir:
        for frame in (sheared, liquid):
            failures += check_frame(args.lmp, sw_file, pathlib.Path(workdir), frame)
    for failure in failures:
        print("FAIL:", failure)
    print("check_data: " + ("FAILED" if failures else "passed"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
