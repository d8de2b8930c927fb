"""Shared plumbing for the examples/si scripts: where LAMMPS and Si.sw are, how to run an input.

Only the Python standard library is used, so the scripts run on a bare Debian 12 with python3.
"""
import os
import pathlib
import re
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
DEFAULT_LMP = (HERE / "../../build/lmp").resolve()

# LAMMPS metal units: pressure [bar] = virial [eV] / volume [Å^3] * NKTV2P (src/update.cpp).
NKTV2P_METAL = 1.6021765e6
BAR_TO_GPA = 1e-4
SI_MASS = 28.0855


def diamond_crystal(lattice_constant, cells):
    """LAMMPS commands for a fresh periodic box of cells^3 conventional diamond cells (a prism
    with zero tilt, so later shears can tilt it), without a pair style."""
    return f"""
clear
units           metal
atom_style      atomic
boundary        p p p
lattice         diamond {lattice_constant}
region          box prism 0 {cells} 0 {cells} 0 {cells} 0 0 0
create_box      1 box
create_atoms    1 box
mass            1 {SI_MASS}"""


def lammps_source_dir(lmp, explicit=None):
    """The LAMMPS source tree whose potentials/Si.sw we use.

    Order: an explicit path, $LAMMPS_SRC, then the tree next to the binary that build/lmp (a
    generated wrapper) executes: <cache>/build/lmp sits beside <cache>/src.
    """
    for candidate in (explicit, os.environ.get("LAMMPS_SRC")):
        if candidate:
            return pathlib.Path(candidate).expanduser().resolve()
    wrapper_text = pathlib.Path(lmp).read_text(errors="replace")
    match = re.search(r'exec\s+"([^"]+)"', wrapper_text)
    if match:
        return (pathlib.Path(match.group(1)).parent.parent / "src").resolve()
    sys.exit(f"cannot locate the LAMMPS source tree from {lmp}; pass --lammps-src or set LAMMPS_SRC")


def sw_potential_file(lmp, explicit_src=None):
    path = lammps_source_dir(lmp, explicit_src) / "potentials" / "Si.sw"
    if not path.is_file():
        sys.exit(f"{path} does not exist; pass --lammps-src (the LAMMPS source tree with potentials/)")
    return path


def run_lammps(lmp, input_text, workdir, name, ranks=1):
    """Runs input_text (written to workdir/name.in) and returns the LAMMPS log."""
    input_path = pathlib.Path(workdir) / f"{name}.in"
    input_path.write_text(input_text)
    return run_lammps_file(lmp, input_path, workdir, name, ranks)


def run_lammps_file(lmp, input_path, workdir, name, ranks=1, variables=None):
    """Runs LAMMPS on input_path in workdir (log: workdir/name.log) and returns the log.

    variables become `-var NAME VALUE`. A failed run stops the script with the tail of the log,
    which carries LAMMPS's ERROR line.
    """
    workdir = pathlib.Path(workdir)
    # The run happens in workdir: a relative executable path is meant from here.
    if os.sep in str(lmp):
        lmp = pathlib.Path(lmp).resolve()
    command = [str(lmp), "-in", str(input_path), "-log", f"{name}.log", "-screen", "none"]
    for variable, value in (variables or {}).items():
        command += ["-var", variable, str(value)]
    if ranks > 1:
        command = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", str(ranks), *command]
    environment = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    result = subprocess.run(command, cwd=workdir, env=environment, capture_output=True, text=True)
    log_path = workdir / f"{name}.log"
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    if result.returncode != 0 or "ERROR" in log:
        tail = "\n".join((log + result.stdout + result.stderr).splitlines()[-25:])
        sys.exit(f"LAMMPS failed on {input_path} in {workdir} (exit {result.returncode}):\n{tail}")
    return log
