#!/usr/bin/env python3
"""LAMMPS runs of pair_style klay, checked against reference data or against physics.

Each sub-command writes a LAMMPS data file and input into a scratch directory, runs LAMMPS
(the build tree's `lmp` wrapper, which auto-loads the KLAY plugin, or with --plugin-load a LAMMPS
whose inputs load it themselves), reads back what LAMMPS printed and dumped, and compares.
Exit status: 0 pass, 1 fail, 77 skip (the model needs a layer the runtime does not implement yet).

  plugin-loads   `plugin list` shows pair style klay
  staged         a shared/conformance staged case: energy, per-atom energy and folded forces of the
                 periodic structure, on any number of ranks, newton on or off
  pair           examples/soft_sphere/model.yaml (ArbitraryModule calls only) against its closed form: energy,
                 per-atom energy, forces, virial
  dynamics       NVE with examples/soft_sphere/model.yaml: the same trajectory on 1 and 3 ranks, newton on and
                 off (atoms migrate, neighbor lists are rebuilt), and total energy conserved
  errors         bad input stops LAMMPS with an ERROR that gives the reason, never a crash
  threads-affinity  `threads 2` on a rank allowed one CPU warns that its threads share it
  threads-default   without `threads`, a rank runs OMP_NUM_THREADS threads, or one
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


def utf8_text(raw, what):
    """Decodes LAMMPS output strictly: the pair style and the runtime print plain ASCII, so bytes
    that are not UTF-8 fail the test (a log that text tools and JSON cannot read)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        print(f"FAIL: {what} is not valid UTF-8 at byte {error.start}: {raw[max(0, error.start - 60):error.end + 20]!r}")
        sys.exit(1)


def add_lammps_arguments(parser, required=True):
    """The options launch_lammps reads: which LAMMPS runs, under which mpiexec, and how it gets
    the plugin (required=False where only some sub-commands run LAMMPS)."""
    parser.add_argument("--lmp", required=required, help="LAMMPS executable with the KLAY plugin")
    parser.add_argument("--mpiexec", default="mpirun")
    parser.add_argument("--plugin-load", metavar="PLUGIN",
                        help="this LAMMPS does not load plugins from LAMMPS_PLUGIN_PATH: every input "
                             "loads PLUGIN (libklay_lammps.so) itself")


def with_plugin_load(args, input_text):
    """For a LAMMPS that does not load plugins from LAMMPS_PLUGIN_PATH (29 Sep 2021, --plugin-load):
    the input loads the plugin itself, first and again after each `clear`, which unloads plugins."""
    if not args.plugin_load:
        return input_text
    load = f"plugin load {args.plugin_load}"
    lines = [load]
    for line in input_text.splitlines():
        lines.append(line)
        if line.strip() == "clear":
            lines.append(load)
    return "\n".join(lines) + "\n"


def launch_lammps(args, input_text, workdir, ranks):
    """Runs LAMMPS on input_text in workdir; returns (exit status, stdout + stderr, command)."""
    input_path = os.path.join(workdir, "in.lmp")
    with open(input_path, "w") as f:
        f.write(with_plugin_load(args, input_text))
    log_path = os.path.join(workdir, "log.lammps")
    if os.path.exists(log_path):
        os.remove(log_path)  # a previous run's
    command = [args.lmp, "-in", input_path, "-echo", "none"]
    if ranks > 1:
        command = [args.mpiexec, "--oversubscribe", "--allow-run-as-root", "-np", str(ranks)] + command
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(command, cwd=workdir, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=args.timeout)
    if os.path.exists(log_path):
        with open(log_path, "rb") as f:
            utf8_text(f.read(), log_path)
    return done.returncode, utf8_text(done.stdout, "LAMMPS output of " + " ".join(command)), command


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


def preamble(newton, data_file="structure.data", before_read=""):
    """The LAMMPS commands every run starts with: metal units, periodic box, the structure."""
    return f"""units metal
atom_style atomic
atom_modify map array
boundary p p p
newton {newton}
{before_read}
read_data {data_file}
"""


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
    """|got - want| <= tolerance * max|want| componentwise; prints the worst deviation. A count
    mismatch fails first (zip would otherwise compare only the common prefix)."""
    if len(got) != len(want):
        print(f"{name}: FAIL {len(got)} values, expected {len(want)}")
        return False
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
# elements on the pair_coeff line name them in order of first appearance (docs/design.md#species).
ELEMENT_OF_SPECIES = ["Si", "O", "C", "H"]


# The end-of-run breakdown, exactly as pair_klay.cpp prints it (benchmark scripts parse it).
TIMING_REPORT = re.compile(
    r"Pair style klay timing \((\d+) force evaluations, average over (\d+) ranks\):\n"
    + "".join("  " + re.escape(f"{name:<20}") + r" [ \d.]{10} s [ \d.-]{6}%\n"
              for name in ("staged graphs", "forward", "backward", "LAMMPS (rest)"))
    + r"  peak memory per rank [ \d.]{10} MiB max, [\d.]+ MiB min\n")


def check_timing_report(args, output, ranks):
    """The breakdown is printed where LAMMPS calls Pair::finish() at the end of a run; LAMMPS
    releases without that hook (--no-timing-report) must print none, not a partial one."""
    if args.no_timing_report:
        ok = "Pair style klay timing" not in output
        print(f"no timing breakdown (this LAMMPS has no Pair::finish()): {'ok' if ok else 'FAIL (printed)'}")
        return ok
    match = TIMING_REPORT.search(output)
    ok = match is not None and int(match.group(2)) == ranks and int(match.group(1)) > 0
    print(f"timing breakdown in the log: {'ok' if ok else 'FAIL (missing or malformed)'}")
    return ok


def staged(args):
    with open(os.path.join(args.case, "reference.json")) as f:
        reference = json.load(f)
    structure = reference["structure"]
    # staged_* cases describe the unit cell and padding; model_* cases (one periodic graph with
    # shifts, which pair_style klay feeds as zero shifts over explicit ghosts) only the cell.
    single_graph = "unit_cell_species_index" not in structure
    species = structure["species_index" if single_graph else "unit_cell_species_index"]
    positions = structure["positions" if single_graph else "unit_cell_positions"]
    reference_forces = reference["forces" if single_graph else "forces_folded"]["data"]
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
        cuts = empty_slab_cuts(structure["cell"], positions)
        decomposition = f"balance 1.0 x {cuts[0]!r} {cuts[1]!r}"

    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        write_data_file(os.path.join(workdir, "structure.data"), structure["cell"],
                        positions, [s + 1 for s in species], num_types)
        output = run_lammps(args, preamble(args.newton, before_read="processors 3 1 1" if args.empty_rank else "") + f"""
{"change_box all triclinic" if args.virial else ""}
{decomposition}
pair_style klay graphs {args.graphs}
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
    ok &= compare("forces (folded onto the unit cell)", forces, [c for row in reference_forces for c in row], bar)
    ok &= compare("per-atom energy", atom_energies, reference["per_atom_energy"]["data"][:n], bar)
    ok &= compare("sum of per-atom energy vs pe", [atom_energy_sum], [energy], bar)
    ok &= check_timing_report(args, output, args.ranks)
    for way, energy_after in re.findall(r"KLAY_ROUND_TRIP (\S+) (\S+)", output):
        ok &= compare(f"energy after {way}", [float(energy_after)], [reference["energy"]], bar)
        ok &= compare(f"forces after {way}", [c for i in range(n) for c in round_trip_dumps[way][i + 1][0:3]],
                      [c for row in reference_forces for c in row], bar)
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
{preamble(newton, "state.data")}
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


def write_empty_safetensors(workdir):
    """The weights of a model without parameters (the soft-sphere model): an empty safetensors file."""
    path = os.path.join(workdir, "empty.safetensors")
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", 2) + b"{}")
    return path


def write_si8_soft_sphere_inputs(args, workdir):
    """The si8 unit cell as workdir/structure.data (one atom type) beside the soft-sphere model's
    empty weights; returns the cell and the positions."""
    with open(os.path.join(args.conformance, SI8, "reference.json")) as f:
        structure = json.load(f)["structure"]
    cell, positions = structure["cell"], structure["unit_cell_positions"]
    write_data_file(os.path.join(workdir, "structure.data"), cell, positions, [1] * len(positions), 1)
    write_empty_safetensors(workdir)
    return cell, positions


def renamed_coordinates_model(workdir, mapped=True):
    """The soft-sphere model with its coordinates input called R, mapped to coords in its md: section
    (or not): the pair style must take what the runtime accepts, not re-decide from the input names."""
    with open(SOFT_SPHERE_MODEL) as f:
        text = f.read()
    text = text.replace("model_inputs.coords", "model_inputs.R").replace("  coords: (N,3)", "  R: (N,3)")
    if mapped:
        text = text.replace("md:\n", "md:\n  inputs: {R: coords}\n", 1)
    path = os.path.join(workdir, "renamed_coordinates.yaml" if mapped else "unmapped_coordinates.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


def pair(args):
    """examples/soft_sphere/model.yaml on the si8 structure, and the same model with its coordinates
    input renamed and mapped in md: (check_pair_model): everything LAMMPS reports has a closed form."""
    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        return max(check_pair_model(args, SOFT_SPHERE_MODEL), check_pair_model(args, renamed_coordinates_model(workdir)))


def check_pair_model(args, model):
    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        cell, positions = write_si8_soft_sphere_inputs(args, workdir)
        output = run_lammps(args, preamble(args.newton) + f"""
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

    n = len(positions)
    energies, forces, virial = pair_potential_reference(cell, positions, 12.25, 0.05)
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
    model = SOFT_SPHERE_MODEL
    runs = {}
    for ranks, newton in [(1, "on"), (3, "on"), (3, "off")]:
        with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
            write_si8_soft_sphere_inputs(args, workdir)
            output = run_lammps(args, preamble(newton) + f"""
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
        ("pair_modify shift", metal + f"pair_style klay\npair_coeff * * {model} {weights} Si Si\npair_modify shift yes\n"
         "run 0\n", "does not support pair_modify shift yes"),
        # an atom on top of another: the model's energy and forces are NaN
        ("overlapping atoms", metal + f"create_atoms 1 single 3 3 3\npair_style klay\npair_coeff * * {model} {weights} Si Si\n"
         "run 0\n", "non-finite result at step 0"),
        # new settings take effect with the next pair_coeff; never a run with the old ones
        ("settings re-issued", metal + f"pair_style klay\npair_coeff * * {model} {weights} Si Si\nrun 0\n"
         "pair_style klay dtype float32\nrun 0\n", "All pair coeffs are not set"),
    ]
    failures = 0
    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        # no coordinates input the runtime knows: the runtime's reason, named by the pair style
        unmapped = renamed_coordinates_model(workdir, mapped=False)
        no_weights = write_empty_safetensors(workdir)
        cases.append(("no coordinates", metal + f"pair_style klay\npair_coeff * * {unmapped} {no_weights} Si Si\n",
                      "model input 'R' has no meaning in MD"))
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


# ---------------------------------------------------------------------------------------------
# Runs checked against the runtime on the whole periodic system (`klay eval`), against each other
# and against physics (finite differences, energy conservation, additivity under hybrid/overlay).

# LAMMPS's virial components in order (xx yy zz xy xz yz) as (row, column) of the 3x3 tensor
VIRIAL_COMPONENTS = [(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]
VIRIAL_REPORT = " ".join(f"$(c_virial[{k + 1}]*vol/{NKTV2P_METAL!r}:%.17g)" for k in range(6))


class Case:
    """A shared/conformance staged case: its periodic cell, model, weights and pair_coeff elements."""

    def __init__(self, directory):
        with open(os.path.join(directory, "reference.json")) as f:
            self.reference = json.load(f)
        structure = self.reference["structure"]
        self.cell = structure["cell"]
        self.positions = structure["unit_cell_positions"]
        self.species = structure["unit_cell_species_index"]
        self.num_types = max(self.species) + 1
        self.elements = ELEMENT_OF_SPECIES[:self.num_types]
        self.model = os.path.join(directory, "model.yaml")
        self.weights = os.path.join(directory, "weights.pth")

    def write_data(self, workdir, name="structure.data", cell=None, positions=None):
        write_data_file(os.path.join(workdir, name), cell or self.cell, positions or self.positions,
                        [s + 1 for s in self.species], self.num_types)


def pair_commands(model, weights, elements):
    return f"pair_style klay\npair_coeff * * {model} {weights} {' '.join(elements)}\n"


def klay_eval(args, model, weights, cell, positions, elements, workdir):
    """`klay eval --json` of the periodic structure: the runtime's padding images and staged graphs,
    independent of LAMMPS. Atoms are written species-sorted so that the model's species numbering
    (order of first appearance) is the pair_coeff order; results come back in the caller's order."""
    order = sorted(range(len(positions)), key=lambda i: ELEMENT_OF_SPECIES.index(elements[i]))
    path = os.path.join(workdir, "structure.xyz")
    lattice = " ".join(repr(float(v)) for row in cell for v in row)
    with open(path, "w") as f:
        f.write(f"{len(positions)}\nLattice=\"{lattice}\" Properties=species:S:1:pos:R:3 pbc=\"T T T\"\n")
        for i in order:
            f.write(f"{elements[i]} " + " ".join(repr(float(v)) for v in positions[i]) + "\n")
    done = subprocess.run([args.klay, "eval", model, weights, path, "--json"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=args.timeout)
    if done.returncode != 0:
        print(done.stdout + done.stderr)
        print(f"FAIL: klay eval exited with status {done.returncode}")
        sys.exit(1)
    result = json.loads(done.stdout)
    forces = [None] * len(positions)
    for row, i in enumerate(order):
        forces[i] = result["forces"][row]
    result["forces"] = forces
    result["virial6"] = [result["virial"][3 * a + b] for a, b in VIRIAL_COMPONENTS]
    return result


def read_step_report(output, tag):
    """{step: (energy, [6 virial components])} from `print "TAG step pe v1..v6"` lines."""
    report = {}
    for fields in re.findall(rf"{tag} (\S+)" + r" (\S+)" * 7, output):
        report[fields[0]] = (float(fields[1]), [float(v) for v in fields[2:]])
    return report


def periodic(args):
    """Energy, 6-component virial and forces from LAMMPS at step 0 and after 4 NVE steps equal the
    model evaluated by the runtime (`klay eval`) on the same periodic configuration."""
    case = Case(args.case)
    n = len(case.positions)
    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        case.write_data(workdir)
        report = 'print "KLAY_STEP {step} $(pe:%.17g) ' + VIRIAL_REPORT + '"\n' + \
            "write_dump all custom step{step}.dump id x y z fx fy fz modify format float %.17g sort id\n"
        output = run_lammps(args, preamble(args.newton) + pair_commands(case.model, case.weights, case.elements) + f"""
compute virial all pressure NULL virial
thermo_style custom step pe ke c_virial[*]
run 0
{report.format(step=0)}
velocity all create 600.0 4928459 loop geom
timestep 0.001
fix integrate all nve
run 4
{report.format(step=4)}
""", workdir, args.ranks)
        steps = read_step_report(output, "KLAY_STEP")
        ok = True
        for step in ("0", "4"):
            dump = read_dump(os.path.join(workdir, f"step{step}.dump"))
            positions = [dump[i + 1][0:3] for i in range(n)]
            elements = [case.elements[s] for s in case.species]
            want = klay_eval(args, case.model, case.weights, case.cell, positions, elements, workdir)
            energy, virial = steps[step]
            label = f"step {step}, {args.ranks} ranks, newton {args.newton}"
            ok &= compare(f"energy vs klay eval, {label}", [energy], [want["energy"]], args.tolerance)
            ok &= compare(f"forces vs klay eval, {label}", [c for i in range(n) for c in dump[i + 1][3:6]],
                          [c for row in want["forces"] for c in row], args.tolerance)
            ok &= compare(f"virial vs klay eval, {label}", virial, want["virial6"], args.tolerance)
    return 0 if ok else 1


def strained(cell, positions, a, b, h):
    """Cell and positions under the homogeneous strain x_a += h x_b (a <= b keeps LAMMPS's
    lower-triangular cell rows lower triangular)."""
    def deform(v):
        w = list(v)
        w[a] += h * v[b]
        return w
    return [deform(row) for row in cell], [deform(p) for p in positions]


def finite_differences(args):
    """Forces equal central differences of the LAMMPS energy (atoms displaced by +-h), and the
    virial W_ab = sum x_a F_b equals -dE/dh under the strain x_a += h x_b, all 6 components."""
    case = Case(args.case)
    n = len(case.positions)
    h = FINITE_STRAIN
    atoms = list(range(1, min(n, args.atoms) + 1))
    pair = pair_commands(case.model, case.weights, case.elements)
    commands = [preamble(args.newton), pair, "compute virial all pressure NULL virial",
                "thermo_style custom step pe c_virial[*]", "run 0",
                f'print "KLAY_CENTER 0 $(pe:%.17g) {VIRIAL_REPORT}"',
                "write_dump all custom forces.dump id fx fy fz modify format float %.17g sort id"]
    for atom in atoms:
        commands.append(f"group moved{atom} id {atom}")
        for axis, name in enumerate("xyz"):
            step = ["0", "0", "0"]
            for sign, move in (("+", h), ("-", -2 * h)):
                step[axis] = repr(move)
                commands += [f"displace_atoms moved{atom} move {' '.join(step)} units box", "run 0",
                             f'print "KLAY_MOVED {atom}{name}{sign} $(pe:%.17g)"']
            step[axis] = repr(h)
            commands.append(f"displace_atoms moved{atom} move {' '.join(step)} units box")
    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        case.write_data(workdir)
        for a, b in VIRIAL_COMPONENTS:
            for sign in (1, -1):
                name = f"strain_{a}{b}{'+-'[sign < 0]}"
                cell, positions = strained(case.cell, case.positions, a, b, sign * h)
                case.write_data(workdir, name + ".data", cell, positions)
                commands += ["clear", preamble(args.newton, name + ".data"), pair, "run 0",
                             f'print "KLAY_STRAINED {name} $(pe:%.17g)"']
        output = run_lammps(args, "\n".join(commands) + "\n", workdir, args.ranks)
        forces = read_dump(os.path.join(workdir, "forces.dump"))
    moved = dict(re.findall(r"KLAY_MOVED (\S+) (\S+)", output))
    energies = dict(re.findall(r"KLAY_STRAINED (\S+) (\S+)", output))
    virial = read_step_report(output, "KLAY_CENTER")["0"][1]
    got, want = [], []
    for atom in atoms:
        for axis, name in enumerate("xyz"):
            got.append(forces[atom][axis])
            want.append(-(float(moved[f"{atom}{name}+"]) - float(moved[f"{atom}{name}-"])) / (2 * h))
    ok = compare(f"forces on atoms {atoms[0]}..{atoms[-1]} vs central differences of the energy",
                 got, want, FINITE_DIFFERENCE_TOLERANCE)
    derivative = [-(float(energies[f"strain_{a}{b}+"]) - float(energies[f"strain_{a}{b}-"])) / (2 * h)
                  for a, b in VIRIAL_COMPONENTS]
    ok &= compare("virial (6 components) vs finite-strain derivative of the energy", virial, derivative,
                  FINITE_DIFFERENCE_TOLERANCE)
    return 0 if ok else 1


def single_graph_variant(yaml_text):
    """The same model wired to one `edge_index` input (the largest graph) instead of the staged
    edge_index0..edge_index{D-1}: layer names, hence weights, are unchanged."""
    lines, declared = [], False
    for line in yaml_text.splitlines():
        if re.match(r"\s+edge_index\d+:", line):    # an input declaration: keep one, for edge_index
            if declared:
                continue
            declared = True
            line = re.sub(r"edge_index\d+:.*", "edge_index: LongTensor (2,E) the largest staged graph", line)
        lines.append(re.sub(r"model_inputs\.edge_index\d+", "model_inputs.edge_index", line))
    return "\n".join(lines) + "\n"


def rank_models(args, workdir):
    """(name, model, weights) for a 1-stage and a 3-stage model, each with staged and single-graph
    wiring; the single-graph variants are written into workdir."""
    tric12 = os.path.join(args.conformance, "staged_nequip_staged3_tric12")
    empty_weights = write_empty_safetensors(workdir)
    models = [("1-stage edge_index0", SOFT_SPHERE_MODEL, empty_weights),
              ("3-stage edge_index0..2", os.path.join(tric12, "model.yaml"), os.path.join(tric12, "weights.pth"))]
    variants = []
    for name, model, weights in models:
        with open(model) as f:
            text = single_graph_variant(f.read())
        path = os.path.join(workdir, os.path.basename(os.path.dirname(model)) + "_edge_index.yaml")
        with open(path, "w") as f:
            f.write(text)
        variants.append((name.split()[0] + " edge_index", path, weights))
    return models + variants


def ranks(args):
    """1, 2, 3 and 4 ranks and a 3-rank grid with an empty middle rank give the same energy and
    forces for 1- and 3-stage models wired to staged graphs and to a single edge_index, equal to
    `klay eval` on the periodic system."""
    case = Case(os.path.join(args.conformance, "staged_nequip_staged3_tric12"))
    n = len(case.positions)
    decompositions = [(1, ""), (2, ""), (3, ""), (4, ""), (3, "empty")]
    cuts = empty_slab_cuts(case.cell, case.positions)
    results = {}
    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        case.write_data(workdir)
        models = rank_models(args, workdir)
        for ranks_used, layout in decompositions:
            commands = []
            for index, (name, model, weights) in enumerate(models):
                commands += ["clear", preamble(args.newton, before_read="processors 3 1 1" if layout else ""),
                             f"balance 1.0 x {cuts[0]!r} {cuts[1]!r}" if layout else "",
                             pair_commands(model, weights, case.elements), "compute virial all pressure NULL virial",
                             "thermo_style custom step pe c_virial[*]", "run 0",
                             f'print "KLAY_MODEL {index} $(pe:%.17g) {VIRIAL_REPORT}"',
                             f"write_dump all custom model{index}.dump id fx fy fz modify format float %.17g sort id"]
            output = run_lammps(args, "\n".join(commands) + "\n", workdir, ranks_used)
            owned_min = [int(m) for m in re.findall(r"Nlocal:\s+\S+ ave\s+\d+ max\s+(\d+) min", output)]
            if layout and (len(owned_min) != len(models) or any(owned_min)):
                print(f"FAIL: the balanced 3-rank grid should leave a rank without atoms (Nlocal min {owned_min})")
                return 1
            report = read_step_report(output, "KLAY_MODEL")
            for index in range(len(models)):
                dump = read_dump(os.path.join(workdir, f"model{index}.dump"))
                results[(ranks_used, layout, index)] = (report[str(index)], [c for i in range(n) for c in dump[i + 1]])
        elements = [case.elements[s] for s in case.species]
        references = [klay_eval(args, model, weights, case.cell, case.positions, elements, workdir)
                      for _, model, weights in models]
    ok = True
    for index, (name, _, _) in enumerate(models):
        (energy, virial), forces = results[(1, "", index)]
        want = references[index]
        ok &= compare(f"{name}: energy, 1 rank vs klay eval", [energy], [want["energy"]], args.tolerance)
        ok &= compare(f"{name}: forces, 1 rank vs klay eval", forces,
                      [c for row in want["forces"] for c in row], args.tolerance)
        ok &= compare(f"{name}: virial, 1 rank vs klay eval", virial, want["virial6"], args.tolerance)
        for ranks_used, layout in decompositions[1:]:
            (other_energy, _), other_forces = results[(ranks_used, layout, index)]
            label = f"{ranks_used} ranks" + (" (middle rank empty)" if layout else "")
            ok &= compare(f"{name}: energy, {label} vs 1 rank", [other_energy], [energy], args.tolerance)
            ok &= compare(f"{name}: forces, {label} vs 1 rank", other_forces, forces, args.tolerance)
    return 0 if ok else 1


def energy_conservation(args):
    """NVE with a conformance model on a replicated cell, relaxed, at about 300 K: the total energy
    drifts less than the bar (eV/atom) over the run."""
    case = Case(args.case)
    steps = args.steps
    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        case.write_data(workdir)
        output = run_lammps(args, preamble("on") + f"""
replicate {args.replicate} {args.replicate} {args.replicate}
{pair_commands(case.model, case.weights, case.elements)}
# from a local minimum, 600 K of kinetic energy shares out to about 300 K
minimize 0.0 1.0e-4 50 500
reset_timestep 0
velocity all create 600.0 4928459 loop geom
timestep {args.timestep}
fix integrate all nve
thermo_style custom step temp pe ke etotal
thermo_modify format float %.17g
thermo {steps // 100}
run {steps}
print "KLAY_ATOMS $(atoms)"
""", workdir, args.ranks)
    atoms = int(re.search(r"KLAY_ATOMS (\d+)", output).group(1))
    rows = [line.split() for line in output.splitlines()
            if re.match(r"\s*\d+(\s+[-+0-9.eE]+){4}\s*$", line)]
    totals = [float(row[4]) for row in rows]
    drift = max(abs(e - totals[0]) for e in totals) / atoms
    temperatures = [float(row[1]) for row in rows]
    ok = len(rows) == 101 and drift < args.bar
    print(f"NVE, {atoms} atoms, {steps} steps of {1000 * args.timestep:g} fs, T {min(temperatures):.0f}-"
          f"{max(temperatures):.0f} K: total energy drift (max |E(t) - E(0)|) {drift:.3e} eV/atom "
          f"(bar {args.bar:g}) {'ok' if ok else 'FAIL'}")
    return 0 if ok else 1


def hybrid(args):
    """pair_style hybrid/overlay klay zbl: energy, forces and virial are the sums of those of
    klay alone and zbl alone."""
    case = Case(args.case)
    n = len(case.positions)
    zbl = "zbl 1.5 2.5"    # inner/outer cutoffs: Si-Si neighbours at ~2.35 A feel the switching region
    klay = f"{case.model} {case.weights} {' '.join(case.elements)}"
    runs = [("klay", f"pair_style klay\npair_coeff * * {klay}"),
            ("zbl", f"pair_style {zbl}\npair_coeff * * 14.0 14.0"),
            ("hybrid", f"pair_style hybrid/overlay klay {zbl}\npair_coeff * * klay {klay}\n"
                       "pair_coeff * * zbl 14.0 14.0")]
    commands = [preamble(args.newton), "compute virial all pressure NULL virial",
                "thermo_style custom step pe c_virial[*]"]
    for name, settings in runs:
        commands += [settings, "run 0", f'print "KLAY_PART {name} $(pe:%.17g) {VIRIAL_REPORT}"',
                     f"write_dump all custom {name}.dump id fx fy fz modify format float %.17g sort id"]
    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        case.write_data(workdir)
        output = run_lammps(args, "\n".join(commands) + "\n", workdir, args.ranks)
        report = read_step_report(output, "KLAY_PART")
        forces = {name: [c for i in range(n) for c in read_dump(os.path.join(workdir, f"{name}.dump"))[i + 1]]
                  for name, _ in runs}
    if not report["zbl"][0] > 0:
        print(f"FAIL: the zbl energy {report['zbl'][0]} is not positive: the test would not test the sum")
        return 1
    label = f"{args.ranks} ranks, newton {args.newton}"
    ok = compare(f"hybrid/overlay energy vs klay + zbl, {label}", [report["hybrid"][0]],
                 [report["klay"][0] + report["zbl"][0]], args.tolerance)
    ok &= compare(f"hybrid/overlay forces vs klay + zbl, {label}", forces["hybrid"],
                  [a + b for a, b in zip(forces["klay"], forces["zbl"])], args.tolerance)
    ok &= compare(f"hybrid/overlay virial vs klay + zbl, {label}", report["hybrid"][1],
                  [a + b for a, b in zip(report["klay"][1], report["zbl"][1])], args.tolerance)
    return 0 if ok else 1


def atom_virial(args):
    """compute stress/atom with a model that takes shifts (per-atom virial from edge gradients):
    the per-atom virials sum to the global virial (sum x (x) F over owned and ghost atoms)."""
    case = Case(os.path.join(args.conformance, SI8))
    model_dir = os.path.join(args.conformance, "model_nequip2_si8")
    model, weights = os.path.join(model_dir, "model.yaml"), os.path.join(model_dir, "weights.pth")
    stress_sum = " ".join(f"$(-c_stress_sum[{k + 1}]/{NKTV2P_METAL!r}:%.17g)" for k in range(6))
    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        case.write_data(workdir)
        output = run_lammps(args, preamble(args.newton) + pair_commands(model, weights, case.elements) + f"""
compute virial all pressure NULL virial
compute stress all stress/atom NULL virial
compute stress_sum all reduce sum c_stress[1] c_stress[2] c_stress[3] c_stress[4] c_stress[5] c_stress[6]
thermo_style custom step pe c_virial[*] c_stress_sum[*]
run 0
print "KLAY_VIRIALS 0 $(pe:%.17g) {VIRIAL_REPORT}"
print "KLAY_ATOM_VIRIALS 0 $(pe:%.17g) {stress_sum}"
""", workdir, args.ranks)
    virial = read_step_report(output, "KLAY_VIRIALS")["0"][1]
    atom_sum = read_step_report(output, "KLAY_ATOM_VIRIALS")["0"][1]
    return 0 if compare(f"sum of per-atom virials vs global virial, {args.ranks} ranks, newton {args.newton}",
                        atom_sum, virial, args.tolerance) else 1


def threads_affinity(args):
    """Two threads per rank in a LAMMPS that may run on one CPU only (what Open MPI's mpirun gives a
    rank when it starts one or two) warn that the threads share it, naming where the count came from
    (`pair_style klay threads 2`, or OMP_NUM_THREADS=2 without the keyword) and the setting that
    fixes it; with two CPUs allowed there is no warning."""
    warnings = {
        "keyword": re.compile(r"WARNING: Pair style klay: 2 threads per rank \(threads keyword\), but a rank may "
                              r"run on only 1 CPU.*or use threads 1", re.S),
        "environment": re.compile(r"WARNING: Pair style klay: 2 threads per rank \(OMP_NUM_THREADS\), but a rank "
                                  r"may run on only 1 CPU.*or set OMP_NUM_THREADS=1", re.S),
    }
    any_warning = re.compile(r"WARNING: Pair style klay: \d+ threads per rank")
    allowed = sorted(os.sched_getaffinity(0))
    ok = True
    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        write_si8_soft_sphere_inputs(args, workdir)
        for source, pair_style, omp_num_threads in (("keyword", "pair_style klay threads 2", "1"),
                                                    ("environment", "pair_style klay", "2")):
            input_path = os.path.join(workdir, f"in.{source}.lmp")
            with open(input_path, "w") as f:
                f.write(with_plugin_load(args, preamble("on") + f"""
{pair_style}
pair_coeff * * {SOFT_SPHERE_MODEL} empty.safetensors Si
run 0
"""))
            for cpus, expect_warning in ((allowed[:1], True), (allowed[:2], False)):
                if len(cpus) < 2 and not expect_warning:
                    print("this machine allows one CPU only: the run without the warning is not made")
                    continue
                done = subprocess.run([args.lmp, "-in", input_path, "-echo", "none"], cwd=workdir,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=args.timeout,
                                      env=dict(os.environ, OMP_NUM_THREADS=omp_num_threads),
                                      preexec_fn=lambda: os.sched_setaffinity(0, cpus))
                output = utf8_text(done.stdout, "LAMMPS output")
                warned = bool((warnings[source] if expect_warning else any_warning).search(output))
                if done.returncode != 0 or "ERROR" in output or warned != expect_warning:
                    print(output)
                    print(f"FAIL ({source}): on CPUs {cpus} LAMMPS exited with {done.returncode} and "
                          f"{'warned' if warned else 'did not warn as expected'} "
                          f"(expected {'the' if expect_warning else 'no'} warning)")
                    ok = False
                else:
                    print(f"{source}, CPUs {cpus}: {'warned' if warned else 'no warning'}, as expected")
    return 0 if ok else 1


def threads_default(args):
    """Without the threads keyword a rank runs OMP_NUM_THREADS threads, and one where that is unset
    (as LAMMPS's own OpenMP styles do): libtorch's default, every CPU a rank may run on, would give
    every rank of `mpirun -np N` all N cores. The keyword wins over the environment."""
    said = re.compile(r"Pair style klay runs (\d+) thread\(s\) per rank \(([^)]*)\)")
    ok = True
    with tempfile.TemporaryDirectory(prefix="klay_lammps_") as workdir:
        write_si8_soft_sphere_inputs(args, workdir)
        for keyword, omp_num_threads, expected in (("", None, (1, "OMP_NUM_THREADS unset")),
                                                   ("", "2", (2, "OMP_NUM_THREADS")),
                                                   ("threads 1", "2", (1, "threads keyword"))):
            input_path = os.path.join(workdir, "in.lmp")
            with open(input_path, "w") as f:
                f.write(with_plugin_load(args, preamble("on") + f"""
pair_style klay {keyword}
pair_coeff * * {SOFT_SPHERE_MODEL} empty.safetensors Si
run 0
"""))
            env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
            if omp_num_threads is not None:
                env["OMP_NUM_THREADS"] = omp_num_threads
            done = subprocess.run([args.lmp, "-in", input_path, "-echo", "none"], cwd=workdir, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=args.timeout)
            output = utf8_text(done.stdout, "LAMMPS output")
            match = said.search(output)
            got = (int(match.group(1)), match.group(2)) if match else None
            what = f"pair_style klay {keyword or '(no keyword)'}, OMP_NUM_THREADS {omp_num_threads or 'unset'}"
            if done.returncode != 0 or "ERROR" in output or got != expected:
                print(output)
                print(f"FAIL: {what}: LAMMPS exited with {done.returncode} and said {got}, expected {expected}")
                ok = False
            else:
                print(f"{what}: {got[0]} thread(s) ({got[1]}), as expected")
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_lammps_arguments(parser)
    parser.add_argument("--klay", default="klay", help="the klay command-line tool (klay eval)")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--no-timing-report", action="store_true",
                        help="this LAMMPS calls no Pair::finish() at the end of a run (29 Sep 2021), "
                             "so the pair style's timing breakdown is not expected")
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
    affinity_parser = sub.add_parser("threads-affinity")
    affinity_parser.add_argument("--conformance", required=True, help="shared/conformance directory")
    default_threads_parser = sub.add_parser("threads-default")
    default_threads_parser.add_argument("--conformance", required=True, help="shared/conformance directory")
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
    staged_parser.add_argument("--graphs", choices=["staged", "largest"], default="staged")
    staged_parser.add_argument("--tolerance", type=float, default=1e-10)
    for name in ("periodic", "finite-differences", "hybrid", "nve"):
        case_parser = sub.add_parser(name)
        case_parser.add_argument("--case", required=True, help="shared/conformance/staged_* directory")
        case_parser.add_argument("--ranks", type=int, default=1)
        case_parser.add_argument("--newton", choices=["on", "off"], default="on")
        case_parser.add_argument("--tolerance", type=float, default=1e-10)
        if name == "finite-differences":
            case_parser.add_argument("--atoms", type=int, default=3, help="atoms displaced")
        if name == "nve":
            case_parser.add_argument("--replicate", type=int, default=2)
            case_parser.add_argument("--steps", type=int, default=1000)
            case_parser.add_argument("--timestep", type=float, default=0.0005, help="ps")
            case_parser.add_argument("--bar", type=float, default=1e-4, help="eV/atom")
    for name in ("ranks", "atom-virial"):
        conformance_parser = sub.add_parser(name)
        conformance_parser.add_argument("--conformance", required=True, help="shared/conformance directory")
        conformance_parser.add_argument("--ranks", type=int, default=1)
        conformance_parser.add_argument("--newton", choices=["on", "off"], default="on")
        conformance_parser.add_argument("--tolerance", type=float, default=1e-10)
    args = parser.parse_args()
    if args.command == "plugin-loads":
        return plugin_loads(args)
    if args.command == "errors":
        return errors(args)
    if args.command == "threads-affinity":
        return threads_affinity(args)
    if args.command == "threads-default":
        return threads_default(args)
    if args.command == "pair":
        return pair(args)
    if args.command == "dynamics":
        return dynamics(args)
    modes = {"periodic": periodic, "finite-differences": finite_differences, "ranks": ranks,
             "nve": energy_conservation, "hybrid": hybrid, "atom-virial": atom_virial}
    if args.command in modes:
        return modes[args.command](args)
    return staged(args)


if __name__ == "__main__":
    sys.exit(main())
