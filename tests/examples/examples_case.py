#!/usr/bin/env python3
"""The examples of examples/, run as their READMEs run them and checked.

  outputs  run a command that prints `{"outputs": {name: {"dtype", "shape", "data"}}}` (klay run,
           examples/arbitrary_alias/run_capi); every output equals the conformance reference
           (real Python KLay) to 1e-10 relative
  md       an example's LAMMPS input (pair_style klay) for a few steps on N ranks; energy and forces
           at the last step equal `klay eval` of the same periodic configuration (1e-10 relative)
  zbl      examples/si/in.zbl.lmp (klay + zbl by hybrid/overlay): ZBL contributes nothing to the
           crystal at rest, takes over in the knock-on atom's collision, and NVE conserves energy
Exit status: 0 pass, 1 fail.
"""
import argparse
import json
import math
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lammps"))
import lammps_case  # noqa: E402  (its compare() and LAMMPS helpers)

# The float64 agreement bar with Python KLay (design rule), and between LAMMPS and the runtime.
BAR = 1e-10


def compare(name, got, want, tolerance=BAR):
    """lammps_case.compare at this file's bar."""
    return lammps_case.compare(name, got, want, tolerance)


def flatten(value):
    return [v for item in value for v in flatten(item)] if isinstance(value, list) else [value]


def outputs(args):
    with open(args.reference) as f:
        reference = json.load(f)
    done = subprocess.run(args.command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=args.timeout)
    if done.returncode != 0:
        print(done.stdout + done.stderr)
        print(f"FAIL: {' '.join(args.command)} exited with status {done.returncode}")
        return 1
    got = json.loads(done.stdout)["outputs"]
    ok = list(got) == reference["output_order"]
    if not ok:
        print(f"FAIL: outputs {list(got)}, expected {reference['output_order']}")
    for name in reference["output_order"]:
        want = reference["outputs"][name]
        if got.get(name, {}).get("shape") != want["shape"]:
            print(f"FAIL: output {name} has shape {got.get(name, {}).get('shape')}, expected {want['shape']}")
            ok = False
            continue
        ok &= compare(f"output {name}", flatten(got[name]["data"]), flatten(want["data"]))
    return 0 if ok else 1


def run_lammps(args, input_text, workdir):
    """Runs LAMMPS (N ranks) on input_text in workdir and returns its output; exits on an error."""
    returncode, output, command = lammps_case.launch_lammps(args, input_text, workdir, args.ranks)
    if returncode != 0 or "ERROR" in output:
        print(output)
        print(f"FAIL: LAMMPS exited with status {returncode}: {' '.join(command)}")
        sys.exit(1)
    return output


def example_input(args, variables):
    """The example's input with its index variables set first (`-var` would do the same)."""
    settings = {"here": os.path.dirname(os.path.abspath(args.input)), "model": args.model,
                "weights": args.weights, **variables}
    return "".join(f"variable {k} index {v}\n" for k, v in settings.items()) + f"include {args.input}\n"


def read_dump(path):
    """(orthogonal box lengths, id -> row of floats) of a `dump custom` file with one snapshot."""
    with open(path) as f:
        lines = f.read().splitlines()
    bounds = lines.index(next(line for line in lines if line.startswith("ITEM: BOX BOUNDS")))
    lengths = [float(lines[bounds + 1 + k].split()[1]) - float(lines[bounds + 1 + k].split()[0])
               for k in range(3)]
    start = next(i for i, line in enumerate(lines) if line.startswith("ITEM: ATOMS")) + 1
    return lengths, {int(f[0]): [float(v) for v in f[1:]] for f in (line.split() for line in lines[start:])}


def md(args):
    """A few steps of the example, then LAMMPS's energy and forces against `klay eval`."""
    with tempfile.TemporaryDirectory(prefix="klay_example_") as workdir:
        output = run_lammps(args, example_input(args, {"steps": args.steps, "thermo_every": args.steps}) + """
print "KLAY_PE $(pe:%.17g)"
write_dump all custom final.dump id x y z fx fy fz modify format float %.17g sort id
""", workdir)
        energy = float(re.search(r"KLAY_PE (\S+)", output).group(1))
        lengths, atoms = read_dump(os.path.join(workdir, "final.dump"))
        ids = sorted(atoms)
        structure = os.path.join(workdir, "final.xyz")
        with open(structure, "w") as f:
            cell = f"{lengths[0]!r} 0 0 0 {lengths[1]!r} 0 0 0 {lengths[2]!r}"
            f.write(f"{len(ids)}\nLattice=\"{cell}\" Properties=species:S:1:pos:R:3 pbc=\"T T T\"\n")
            f.writelines(f"Si {atoms[i][0]!r} {atoms[i][1]!r} {atoms[i][2]!r}\n" for i in ids)
        done = subprocess.run([args.klay, "eval", args.model, args.weights, structure, "--json"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=args.timeout)
        if done.returncode != 0:
            print(done.stdout + done.stderr)
            print(f"FAIL: klay eval exited with status {done.returncode}")
            return 1
        want = json.loads(done.stdout)
        label = f"after {args.steps} steps on {args.ranks} ranks"
        ok = compare(f"energy vs klay eval, {label}", [energy], [want["energy"]])
        ok &= compare(f"forces vs klay eval, {label}", [c for i in ids for c in atoms[i][3:6]],
                      [c for row in want["forces"] for c in row])
    return 0 if ok else 1


def zbl(args):
    """Thermo rows of in.zbl.lmp: the ZBL part is exactly 0 in the crystal at rest (every pair is
    beyond its 2.2 A outer cutoff), positive once the knock-on atom collides, and the total energy
    of the NVE run drifts by less than 1e-4 eV/atom."""
    with tempfile.TemporaryDirectory(prefix="klay_example_") as workdir:
        output = run_lammps(args, example_input(args, {"steps": args.steps, "thermo_every": 10}), workdir)
    natoms = int(re.search(r"with (\d+) atoms", output).group(1))
    header = re.search(r"^\s*Step .*$", output, re.M)
    columns = header.group(0).split()
    rows = []
    for line in output[header.end() + 1:].splitlines():
        fields = line.split()
        if len(fields) != len(columns) or not re.fullmatch(r"\d+", fields[0]):
            break
        rows.append(dict(zip(columns, map(float, fields))))
    ok = len(rows) == args.steps // 10 + 1
    print(f"{len(rows)} thermo rows {'ok' if ok else 'FAIL'}")
    zbl_start = rows[0]["c_zbl"]
    zbl_max = max(row["c_zbl"] for row in rows)
    print(f"ZBL energy at step 0: {zbl_start!r} (must be 0); largest during the collision: {zbl_max:.4g} eV")
    ok &= zbl_start == 0.0 and zbl_max > 0.0
    drift = max(abs(row["TotEng"] - rows[0]["TotEng"]) for row in rows) / natoms
    print(f"NVE total energy drift: {drift:.3e} eV/atom (bar 1e-4) {'ok' if drift < 1e-4 else 'FAIL'}")
    ok &= drift < 1e-4 and all(math.isfinite(row["PotEng"]) for row in rows)
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    lammps_case.add_lammps_arguments(parser, required=False)
    parser.add_argument("--klay", help="the klay command-line tool")
    parser.add_argument("--timeout", type=float, default=800)
    commands = parser.add_subparsers(dest="command_name", required=True)
    p = commands.add_parser("outputs")
    p.add_argument("--reference", required=True, help="a conformance reference.json")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    for name in ("md", "zbl"):
        p = commands.add_parser(name)
        p.add_argument("--input", required=True, help="the example's LAMMPS input")
        p.add_argument("--model", required=True)
        p.add_argument("--weights", required=True)
        p.add_argument("--ranks", type=int, default=2)
        p.add_argument("--steps", type=int, default=10 if name == "md" else 100)
    args = parser.parse_args()
    # LAMMPS runs in a scratch directory: relative paths are taken from where the test started.
    for name in ("lmp", "klay", "input", "model", "weights"):
        if getattr(args, name, None) and os.sep in getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    if args.command_name == "outputs":
        args.command = args.command[1:] if args.command[:1] == ["--"] else args.command
    return {"outputs": outputs, "md": md, "zbl": zbl}[args.command_name](args)


if __name__ == "__main__":
    sys.exit(main())
