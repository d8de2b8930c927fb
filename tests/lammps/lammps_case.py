#!/usr/bin/env python3
"""LAMMPS runs of pair_style klay, checked against reference data or against physics.

Each sub-command writes a LAMMPS data file and input into a scratch directory, runs LAMMPS
(the build tree's `lmp` wrapper, which auto-loads the KLAY plugin), reads back what LAMMPS
printed and dumped, and compares. Exit status: 0 pass, 1 fail, 77 skip (the model needs a layer
the runtime does not implement yet).

  plugin-loads   `plugin list` shows pair style klay
  staged         a shared/conformance staged case: energy, per-atom energy and folded forces of the
                 periodic structure, on any number of ranks, newton on or off
  pair           examples/soft_sphere/model.yaml (ArbitraryModule calls only) against its closed form: energy,
                 per-atom energy, forces, virial
  dynamics       NVE with examples/soft_sphere/model.yaml: the same trajectory on 1 and 3 ranks, newton on and
                 off (atoms migrate, neighbor lists are rebuilt), and total energy conserved
  errors         bad input stops LAMMPS with an ERROR that gives the reason, never a crash
"""
import argparse
import json
import os
import re
import struct
import subprocess
import sys
import tempfile

SKIP = 77
# What a model load says when the runtime lacks a layer (src/runtime/model.cpp): the test cannot
# judge the pair style then.
NOT_IMPLEMENTED = re.compile(r"layer type \S+ is not implemented")


def launch_lammps(args, input_text, workdir, ranks):
    """Runs LAMMPS on input_text in workdir; returns (exit status, stdout + stderr, command)."""
    input_path = os.path.join(workdir, "in.lmp")
    with open(input_path, "w") as f:
        f.write(input_text)
    command = [args.lmp, "-in", input_path, "-echo", "none"]
    if ranks > 1:
        command = [args.mpiexec, "--oversubscribe", "--allow-run-as-root", "-np", str(ranks)] + command
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=workdir, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=args.timeout)
    return done.returncode, done.stdout, command


def run_lammps(args, input_text, workdir, ranks):
    """Runs LAMMPS and returns its output; exits the test on an error (skip: a layer is missing)."""
    returncode, output, command = launch_lammps(args, input_text, workdir, ranks)
    if returncode != 0 or "ERROR" in output:
        missing = NOT_IMPLEMENTED.search(output)
        if missing and "ERROR" in output:
            print("SKIP: the runtime cannot build this model yet:", missing.group(0).strip())
            sys.exit(SKIP)
        print(output)
        print(f"FAIL: LAMMPS exited with status {returncode}: {' '.join(command)}")
        sys.exit(1)
    return output


def plugin_loads(args):
    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        output = run_lammps(args, "plugin list\n", workdir, 1)
    if not re.search(r"pair style plugin klay", output):
        print(output)
        print("FAIL: `plugin list` does not show pair style klay")
        return 1
    print("pair style klay is loaded")
    return 0


# The example soft-sphere pair potential written as a KLay graph of ArbitraryModule calls.
SOFT_SPHERE_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples",
                                 "soft_sphere", "model.yaml")


def write_data_file(path, cell, positions, types, num_types):
    """A LAMMPS data file for a cell whose rows are a = (ax,0,0), b = (bx,by,0), c = (cx,cy,cz)."""
    (ax, ay, az), (bx, by, bz), (cx, cy, cz) = cell
    if ay != 0.0 or az != 0.0 or bz != 0.0:
        raise ValueError("cell is not in LAMMPS's lower-triangular form")
    lines = ["pair_style klay test structure", "", f"{len(positions)} atoms", f"{num_types} atom types",
             f"0.0 {ax!r} xlo xhi", f"0.0 {by!r} ylo yhi", f"0.0 {cz!r} zlo zhi"]
    if bx != 0.0 or cx != 0.0 or cy != 0.0:
        lines.append(f"{bx!r} {cx!r} {cy!r} xy xz yz")
    lines += ["", "Masses", ""] + [f"{t} 28.0855" for t in range(1, num_types + 1)]
    lines += ["", "Atoms # atomic", ""]
    lines += [f"{i + 1} {types[i]} {x!r} {y!r} {z!r}" for i, (x, y, z) in enumerate(positions)]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def read_dump(path):
    """id -> row of floats from a `dump custom` file with one snapshot."""
    with open(path) as f:
        lines = f.read().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ITEM: ATOMS")) + 1
    rows = {}
    for line in lines[start:]:
        fields = line.split()
        rows[int(fields[0])] = [float(v) for v in fields[1:]]
    return rows


def compare(name, got, want, tolerance):
    """|got - want| <= tolerance * max|want| componentwise; prints the worst deviation."""
    scale = max(abs(w) for w in want)
    worst = max(abs(g - w) for g, w in zip(got, want))
    relative = worst / scale if scale > 0 else worst
    status = "ok" if relative <= tolerance else "FAIL"
    print(f"{name}: max |difference| {worst:.3e} = {relative:.3e} relative (bar {tolerance:g}) {status}")
    return relative <= tolerance


def empty_slab_cuts(cell, positions):
    """Two cuts (fractions of the a axis) around the middle of the widest gap between atoms, so
    that `processors 3 1 1` + `balance 1.0 x CUT1 CUT2` leaves the middle rank without atoms."""
    (ax, _, _), (bx, by, _), (cx, cy, cz) = cell
    fractions = []
    for x, y, z in positions:
        fz = z / cz
        fy = (y - fz * cy) / by
        fractions.append(((x - fy * bx - fz * cx) / ax) % 1.0)
    fractions.sort()
    width, start = max((b - a, a) for a, b in zip(fractions, fractions[1:]))
    return start + 0.25 * width, start + 0.75 * width


NKTV2P_METAL = 1.6021765e6   # LAMMPS's pressure * volume -> energy conversion of metal units


# The conformance models number species 0, 1, ... without declaring a species list, so the
# elements on the pair_coeff line name them in order of first appearance (design.md §3).
ELEMENT_OF_SPECIES = ["Si", "O", "C", "H"]


def staged(args):
    with open(os.path.join(args.case, "reference.json")) as f:
        reference = json.load(f)
    structure = reference["structure"]
    species = structure["unit_cell_species_index"]
    num_types = max(species) + 1
    n = len(species)
    elements = " ".join(ELEMENT_OF_SPECIES[:num_types])
    model = os.path.join(args.case, "model.yaml")
    weights = os.path.join(args.case, "weights.pth")

    strain_steps = ""
    if args.virial:
        # E at x -> x (1 +- h) and x -> x +- h y: central differences give -W_xx and -W_xy
        strain_steps = f"""
variable h equal {FINITE_STRAIN}
change_box all x scale $(1+v_h) remap
run 0
print "KLAY_STRAINED xx+ $(pe:%.17g)"
change_box all x scale $((1-v_h)/(1+v_h)) remap
run 0
print "KLAY_STRAINED xx- $(pe:%.17g)"
change_box all x scale $(1/(1-v_h)) remap
change_box all xy delta $(v_h*ly) remap
run 0
print "KLAY_STRAINED xy+ $(pe:%.17g)"
change_box all xy delta $(-2*v_h*ly) remap
run 0
print "KLAY_STRAINED xy- $(pe:%.17g)"
"""

    decomposition = ""
    if args.empty_rank:
        if args.ranks != 3:
            raise SystemExit("--empty-rank needs --ranks 3")
        cuts = empty_slab_cuts(structure["cell"], structure["unit_cell_positions"])
        decomposition = f"balance 1.0 x {cuts[0]!r} {cuts[1]!r}"

    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        write_data_file(os.path.join(workdir, "structure.data"), structure["cell"],
                        structure["unit_cell_positions"], [s + 1 for s in species], num_types)
        output = run_lammps(args, f"""
units metal
atom_style atomic
atom_modify map array
boundary p p p
newton {args.newton}
{"processors 3 1 1" if args.empty_rank else ""}
read_data structure.data
{"change_box all triclinic" if args.virial else ""}
{decomposition}
pair_style klay
pair_coeff * * {model} {weights} {elements}
compute atom_energy all pe/atom
compute atom_energy_sum all reduce sum c_atom_energy
compute virial all pressure NULL virial
thermo_style custom step pe c_atom_energy_sum c_virial[*]
thermo_modify format float %.17g
dump forces all custom 1 forces.dump id fx fy fz c_atom_energy
dump_modify forces format float %.17g sort id
run 0
print "KLAY_ENERGY $(pe:%.17g) $(c_atom_energy_sum:%.17g)"
print "KLAY_VIRIAL $(c_virial[1]*vol/{NKTV2P_METAL!r}:%.17g) $(c_virial[4]*vol/{NKTV2P_METAL!r}:%.17g)"
undump forces
{strain_steps}
{round_trip_steps(model, weights, elements, args.newton) if args.round_trip else ""}
""", workdir, args.ranks)
        dump = read_dump(os.path.join(workdir, "forces.dump"))
        round_trip_dumps = {way: read_dump(os.path.join(workdir, f"forces_{way}.dump"))
                            for way in ROUND_TRIPS} if args.round_trip else {}

    match = re.search(r"KLAY_ENERGY (\S+) (\S+)", output)
    energy, atom_energy_sum = float(match.group(1)), float(match.group(2))
    forces = [c for i in range(n) for c in dump[i + 1][0:3]]
    atom_energies = [dump[i + 1][3] for i in range(n)]

    bar = args.tolerance
    ok = compare("energy", [energy], [reference["energy"]], bar)
    ok &= compare("forces (folded onto the unit cell)", forces,
                  [c for row in reference["forces_folded"]["data"] for c in row], bar)
    ok &= compare("per-atom energy", atom_energies, reference["per_atom_energy"]["data"][:n], bar)
    ok &= compare("sum of per-atom energy vs pe", [atom_energy_sum], [energy], bar)
    for way, energy_after in re.findall(r"KLAY_ROUND_TRIP (\S+) (\S+)", output):
        ok &= compare(f"energy after {way}", [float(energy_after)], [reference["energy"]], bar)
        ok &= compare(f"forces after {way}", [c for i in range(n) for c in round_trip_dumps[way][i + 1][0:3]],
                      [c for row in reference["forces_folded"]["data"] for c in row], bar)
    if args.round_trip and len(re.findall(r"KLAY_ROUND_TRIP", output)) != len(ROUND_TRIPS):
        print("FAIL: not every round trip reported its energy")
        ok = False
    if args.virial:
        virial = [float(v) for v in re.search(r"KLAY_VIRIAL (\S+) (\S+)", output).groups()]
        strained = dict(re.findall(r"KLAY_STRAINED (\S+) (\S+)", output))
        derivative = [-(float(strained[c + "+"]) - float(strained[c + "-"])) / (2 * FINITE_STRAIN)
                      for c in ("xx", "xy")]
        ok &= compare("virial xx, xy vs finite-strain derivative of the energy", virial, derivative,
                      FINITE_DIFFERENCE_TOLERANCE)
    return 0 if ok else 1


ROUND_TRIPS = ("restart", "data")


def round_trip_steps(model, weights, elements, newton):
    """LAMMPS commands that write the state, start over from it (read_restart, then read_data)
    with pair_style and pair_coeff issued again, and report energy and forces each time."""
    settings = f"pair_style klay\npair_coeff * * {model} {weights} {elements}"
    report = """run 0
print "KLAY_ROUND_TRIP {way} $(pe:%.17g)"
write_dump all custom forces_{way}.dump id fx fy fz modify format float %.17g sort id"""
    return f"""write_restart state.restart
write_data state.data
clear
read_restart state.restart
{settings}
{report.format(way="restart")}
clear
units metal
atom_style atomic
atom_modify map array
boundary p p p
newton {newton}
read_data state.data
{settings}
{report.format(way="data")}
"""


SI8 = "staged_nequip_staged2_si8"
FINITE_STRAIN = 1e-5
# central differences with h = 1e-5: truncation ~h^2, rounding ~1e-16/h of the energy
FINITE_DIFFERENCE_TOLERANCE = 1e-7


def pair_potential_reference(cell, positions, cutoff_squared, prefactor):
    """Closed form of examples/soft_sphere/model.yaml on a periodic cell: E_i = 1/2 sum phi(r_ij) over all
    images within the cutoff with phi = 2 * prefactor * (rc^2 - r^2)^2; forces; virial sum x F."""
    n = len(positions)
    energies = [0.0] * n
    forces = [[0.0, 0.0, 0.0] for _ in range(n)]
    virial = [0.0] * 6   # xx yy zz xy xz yz
    reach = 3   # images: enough for the 3.5 A cutoff on cells longer than 1.2 A
    images = [(a, b, c) for a in range(-reach, reach + 1) for b in range(-reach, reach + 1)
              for c in range(-reach, reach + 1)]
    for i, xi in enumerate(positions):
        for j, xj in enumerate(positions):
            for image in images:
                if i == j and image == (0, 0, 0):
                    continue
                shift = [sum(image[k] * cell[k][d] for k in range(3)) for d in range(3)]
                d = [xi[k] - xj[k] - shift[k] for k in range(3)]   # x_i - (x_j + S.cell)
                r2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
                if not r2 ** 0.5 < cutoff_squared ** 0.5:
                    continue
                gap = cutoff_squared - r2
                energies[i] += prefactor * gap * gap
                for k in range(3):
                    forces[i][k] += 8.0 * prefactor * gap * d[k]
                pair_force = [8.0 * prefactor * gap * d[k] for k in range(3)]
                for v, (a, b) in enumerate([(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]):
                    virial[v] += 0.5 * d[a] * pair_force[b]
    return energies, forces, virial


def pair(args):
    """examples/soft_sphere/model.yaml on the si8 structure: everything LAMMPS reports has a closed form."""
    with open(os.path.join(args.conformance, SI8, "reference.json")) as f:
        structure = json.load(f)["structure"]
    cell, positions = structure["cell"], structure["unit_cell_positions"]
    n = len(positions)
    model = SOFT_SPHERE_MODEL
    energies, forces, virial = pair_potential_reference(cell, positions, 12.25, 0.05)

    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        write_data_file(os.path.join(workdir, "structure.data"), cell, positions, [1] * n, 1)
        # the model has no parameters: its weights file is an empty safetensors file
        with open(os.path.join(workdir, "empty.safetensors"), "wb") as f:
            f.write(struct.pack("<Q", 2) + b"{}")
        output = run_lammps(args, f"""
units metal
atom_style atomic
atom_modify map array
boundary p p p
newton {args.newton}
read_data structure.data
pair_style klay
pair_coeff * * {model} empty.safetensors Si
compute atom_energy all pe/atom
compute virial all pressure NULL virial
thermo_style custom step pe c_virial[*]
dump forces all custom 1 forces.dump id fx fy fz c_atom_energy
dump_modify forces format float %.17g sort id
run 0
print "KLAY_ENERGY $(pe:%.17g) $(vol:%.17g)"
print "KLAY_VIRIAL $(c_virial[1]:%.17g) $(c_virial[2]:%.17g) $(c_virial[3]:%.17g) $(c_virial[4]:%.17g) $(c_virial[5]:%.17g) $(c_virial[6]:%.17g)"
""", workdir, args.ranks)
        dump = read_dump(os.path.join(workdir, "forces.dump"))

    energy, volume = (float(v) for v in re.search(r"KLAY_ENERGY (\S+) (\S+)", output).groups())
    pressure = [float(v) for v in re.search(r"KLAY_VIRIAL" + r" (\S+)" * 6, output).groups()]
    bar = args.tolerance
    ok = compare("energy", [energy], [sum(energies)], bar)
    ok &= compare("per-atom energy", [dump[i + 1][3] for i in range(n)], energies, bar)
    ok &= compare("forces", [c for i in range(n) for c in dump[i + 1][0:3]],
                  [c for row in forces for c in row], bar)
    ok &= compare("virial", [p * volume / NKTV2P_METAL for p in pressure], virial, bar)
    return 0 if ok else 1


def dynamics(args):
    """50 NVE steps of examples/soft_sphere/model.yaml on a 2x2x2 si8 supercell, neighbor lists rebuilt every
    step: every decomposition gives the same trajectory, and the total energy is conserved."""
    with open(os.path.join(args.conformance, SI8, "reference.json")) as f:
        structure = json.load(f)["structure"]
    model = SOFT_SPHERE_MODEL
    runs = {}
    for ranks, newton in [(1, "on"), (3, "on"), (3, "off")]:
        with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
            write_data_file(os.path.join(workdir, "structure.data"), structure["cell"],
                            structure["unit_cell_positions"], [1] * 8, 1)
            with open(os.path.join(workdir, "empty.safetensors"), "wb") as f:
                f.write(struct.pack("<Q", 2) + b"{}")
            output = run_lammps(args, f"""
units metal
atom_style atomic
atom_modify map array
boundary p p p
newton {newton}
read_data structure.data
replicate 2 2 2
pair_style klay
pair_coeff * * {model} empty.safetensors Si
neighbor 0.5 bin
neigh_modify every 1 delay 0 check no
velocity all create 1200.0 4928459 loop geom
timestep 0.0005
fix integrate all nve
thermo_style custom step pe ke etotal
thermo_modify format float %.17g
thermo 10
run 50
dump final all custom 1 final.dump id x y z vx vy vz fx fy fz
dump_modify final format float %.17g sort id
run 0
print "KLAY_ETOTAL $(etotal:%.17g) $(ke:%.17g)"
""", workdir, ranks)
            runs[(ranks, newton)] = (read_dump(os.path.join(workdir, "final.dump")), output)

    serial_dump, serial_output = runs[(1, "on")]
    ids = sorted(serial_dump)
    ok = True
    for key in [(3, "on"), (3, "off")]:
        dump = runs[key][0]
        for name, columns in [("positions", slice(0, 3)), ("velocities", slice(3, 6)), ("forces", slice(6, 9))]:
            ok &= compare(f"{name} after 50 steps, {key[0]} ranks newton {key[1]} vs serial",
                          [v for i in ids for v in dump[i][columns]],
                          [v for i in ids for v in serial_dump[i][columns]], args.tolerance)

    energies = [float(line.split()[3]) for line in serial_output.splitlines()
                if re.match(r"\s+\d+\s+\S+\s+\S+\s+\S+\s*$", line)]
    kinetic = float(re.search(r"KLAY_ETOTAL \S+ (\S+)", serial_output).group(1))
    drift = max(abs(e - energies[0]) for e in energies)
    conserved = drift <= 1e-4 * kinetic
    print(f"total energy over 50 steps: max drift {drift:.3e} eV, kinetic energy {kinetic:.3e} eV: "
          f"{'ok' if conserved else 'FAIL'} (bar 1e-4 of the kinetic energy)")
    return 0 if ok and conserved else 1


def errors(args):
    """Each bad input must end LAMMPS with an ERROR line that contains the expected reason."""
    si8 = os.path.join(args.conformance, SI8)
    model, weights = os.path.join(si8, "model.yaml"), os.path.join(si8, "weights.pth")
    box = """units {units}
atom_style atomic
region box block 0 6 0 6 0 6
create_box 2 box
create_atoms 1 single 1 1 1
create_atoms 2 single 3 3 3
mass * 28.0
"""
    metal = box.format(units="metal")
    cases = [
        ("unknown keyword", metal + "pair_style klay precision double\n",
         "Unknown pair style klay keyword: precision"),
        ("bad dtype", metal + "pair_style klay dtype float16\n", "dtype must be float64 or float32"),
        ("not * *", metal + f"pair_style klay\npair_coeff 1 1 {model} {weights} Si Si\n",
         "must start with * *"),
        ("element count", metal + f"pair_style klay\npair_coeff * * {model} {weights} Si\n",
         "Number of element to type mappings does not match number of atom types"),
        ("missing yaml", metal + f"pair_style klay\npair_coeff * * {si8}/no_such_model.yaml {weights} Si Si\n",
         "no_such_model.yaml"),
        ("no pair_coeff", metal + "pair_style klay\nrun 0\n", "All pair coeffs are not set"),
    ]
    model_cases = [
        ("units", box.format(units="real") + f"pair_style klay\npair_coeff * * {model} {weights} Si Si\nrun 0\n",
         "requires metal units"),
        ("ghost cutoff", metal + f"comm_modify cutoff 4.0\npair_style klay\npair_coeff * * {model} {weights} Si Si\nrun 0\n",
         "but comm_modify cutoff is 4"),
        ("per-atom virial", metal + f"pair_style klay\npair_coeff * * {model} {weights} Si Si\n"
         "compute stress all stress/atom NULL\ncompute total all reduce sum c_stress[1]\n"
         "thermo_style custom step c_total\nrun 0\n", "cannot compute a per-atom virial"),
    ]
    failures = 0
    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        for needs_model, (name, text, expected) in [(False, c) for c in cases] + [(True, c) for c in model_cases]:
            returncode, output, _ = launch_lammps(args, text, workdir, 1)
            error_lines = [line for line in output.splitlines() if "ERROR" in line]
            if needs_model and NOT_IMPLEMENTED.search(output):
                print(f"{name}: SKIP ({NOT_IMPLEMENTED.search(output).group(0)})")
                continue
            ok = returncode != 0 and any(expected in line for line in error_lines)
            print(f"{name}: {'ok' if ok else 'FAIL'}: {error_lines[0] if error_lines else '(no ERROR line)'}")
            if not ok:
                print(output)
                failures += 1
    return 1 if failures else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lmp", required=True, help="LAMMPS executable with the KLAY plugin")
    parser.add_argument("--mpiexec", default="mpirun")
    parser.add_argument("--timeout", type=float, default=600)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("plugin-loads")
    pair_parser = sub.add_parser("pair")
    pair_parser.add_argument("--conformance", required=True, help="shared/conformance directory")
    pair_parser.add_argument("--ranks", type=int, default=1)
    pair_parser.add_argument("--newton", choices=["on", "off"], default="on")
    pair_parser.add_argument("--tolerance", type=float, default=1e-10)
    dynamics_parser = sub.add_parser("dynamics")
    dynamics_parser.add_argument("--conformance", required=True, help="shared/conformance directory")
    dynamics_parser.add_argument("--tolerance", type=float, default=1e-10)
    errors_parser = sub.add_parser("errors")
    errors_parser.add_argument("--conformance", required=True, help="shared/conformance directory")
    staged_parser = sub.add_parser("staged")
    staged_parser.add_argument("--case", required=True, help="shared/conformance/staged_* directory")
    staged_parser.add_argument("--ranks", type=int, default=1)
    staged_parser.add_argument("--newton", choices=["on", "off"], default="on")
    staged_parser.add_argument("--virial", action="store_true",
                               help="also check the virial against finite strains of the box")
    staged_parser.add_argument("--empty-rank", action="store_true",
                               help="3 ranks along a, the middle one owning no atom")
    staged_parser.add_argument("--round-trip", action="store_true",
                               help="also restart from write_restart and write_data files")
    staged_parser.add_argument("--tolerance", type=float, default=1e-10)
    args = parser.parse_args()
    if args.command == "plugin-loads":
        return plugin_loads(args)
    if args.command == "errors":
        return errors(args)
    if args.command == "pair":
        return pair(args)
    if args.command == "dynamics":
        return dynamics(args)
    return staged(args)


if __name__ == "__main__":
    sys.exit(main())
