#!/usr/bin/env python3
"""Silicon training and test data labelled by LAMMPS's Stillinger-Weber potential (Si.sw).

Writes data/train.xyz and data/test.xyz (held out: the same kinds of configuration generated with
other seeds, temperatures and strains) as extended XYZ the way ASE writes it:

  Lattice="ax ay az bx by bz cx cy cz" Properties=species:S:1:pos:R:3:forces:R:3 energy=E
  virial="9 numbers" config_type=KIND pbc="T T T"

energy in eV, forces in eV/Å, virial in eV as LAMMPS's sum of r·F (= -stress·volume), row-major.
Lattice rows are the LAMMPS box vectors (a along x, b in the xy plane: tilts xy, xz, yz); positions
are LAMMPS's wrapped coordinates shifted by the box origin so that they lie inside the lattice cell.

Configurations (64 atoms = 2x2x2 conventional diamond cells unless stated): MD snapshots of the
crystal from 300 to 1500 K, the liquid at 2500-3000 K and its quench, strained cells (isotropic,
uniaxial, sheared; unrelaxed, relaxed and thermal), a vacancy (63 atoms), a (100) slab with vacuum
along z and the perfect/rattled crystal at lattice constants 5.2-5.7 Å for the equation of state.
MD snapshots are 100 steps (0.1 ps) apart. Fixed seeds on one rank: reruns give the same files.

  ./make_data.py [--lmp ../../build/lmp] [--lammps-src DIR] [--out data]
"""
import argparse
import pathlib
import tempfile

import lammps_driver as lmp_driver

LATTICE_CONSTANT = 5.431  # Å, the SW diamond minimum
SNAPSHOT_INTERVAL = 100   # MD steps of 1 fs between snapshots


class DataScript:
    """A LAMMPS input that labels snapshots of one family of configurations.

    Every snapshot writes a dump (positions, forces) and one line of labels (energy, box, virial);
    parse() turns them back into frames.
    """

    def __init__(self, workdir, name, sw_file):
        self.workdir = pathlib.Path(workdir)
        self.name = name
        self.sw_file = sw_file
        self.lines = []
        self.snapshot_count = 0

    def add(self, text):
        self.lines.append(text.strip("\n"))

    def diamond(self, lattice_constant=LATTICE_CONSTANT, cells=2):
        """A fresh triclinic-capable box of cells^3 conventional diamond cells labelled by SW."""
        self.add(lmp_driver.diamond_crystal(lattice_constant, cells) + f"""
pair_style      sw
pair_coeff      * * {self.sw_file} Si
neighbor        1.0 bin
timestep        0.001
# Virial part of the pressure tensor only (no kinetic term): times volume / nktv2p it is sum r·F.
compute         virial all pressure NULL virial
thermo_style    custom step temp pe press c_virial[*]
thermo          {SNAPSHOT_INTERVAL}""")

    def deform(self, exx=0.0, eyy=0.0, ezz=0.0, gxy=0.0, gxz=0.0, gyz=0.0):
        """Affine strain of the current (cubic) box: lengths scale by 1+e, tilts are g·length."""
        self.add(f"""
variable        edge equal lx
change_box      all x final 0 $(v_edge*{1 + exx}) y final 0 $(v_edge*{1 + eyy}) z final 0 $(v_edge*{1 + ezz}) &
                xy final $(v_edge*{gxy}) xz final $(v_edge*{gxz}) yz final $(v_edge*{gyz}) remap units box""")

    def relax(self):
        self.add("minimize        0 1e-8 2000 20000")

    def thermalize(self, temperature, steps, seed, pressure=None):
        """Velocities for twice the temperature (equipartition moves half of the kinetic energy into
        the potential at once), then `steps` of Nose-Hoover MD."""
        self.add(f"""
velocity        all create {2 * temperature} {seed} mom yes rot yes dist gaussian
{thermostat(temperature, temperature, pressure)}
run             {steps}""")

    def continue_md(self, steps):
        self.add(f"run             {steps}")

    def change_thermostat(self, start, end, pressure=None):
        self.add(f"unfix           md\n{thermostat(start, end, pressure)}")

    def snapshot(self, config_type):
        index = self.snapshot_count
        self.snapshot_count += 1
        virial = " ".join(f"$(c_virial[{k}]*vol/{lmp_driver.NKTV2P_METAL}:%.12f)" for k in range(1, 7))
        # run 0 makes pe and the virial compute current at the snapshot's positions.
        self.add(f"""
run             0 post no
write_dump      all custom {self.name}_{index}.dump id x y z fx fy fz modify sort id format float %.12f
print           "{index} {config_type} $(pe:%.12f) $(xlo:%.12f) $(ylo:%.12f) $(zlo:%.12f) $(lx:%.12f) $(ly:%.12f) $(lz:%.12f) $(xy:%.12f) $(xz:%.12f) $(yz:%.12f) {virial}" append {self.name}.labels screen no""")

    def sample_md(self, config_type, count):
        for _ in range(count):
            self.continue_md(SNAPSHOT_INTERVAL)
            self.snapshot(config_type)

    def run(self, lmp):
        if self.snapshot_count == 0:
            return []
        (self.workdir / f"{self.name}.labels").unlink(missing_ok=True)  # print appends
        lmp_driver.run_lammps(lmp, "\n".join(self.lines) + "\n", self.workdir, self.name)
        return self.parse()

    def parse(self):
        frames = []
        for line in (self.workdir / f"{self.name}.labels").read_text().splitlines():
            fields = line.split()
            index, config_type = int(fields[0]), fields[1]
            energy, xlo, ylo, zlo, lx, ly, lz, xy, xz, yz = map(float, fields[2:12])
            wxx, wyy, wzz, wxy, wxz, wyz = map(float, fields[12:18])
            atoms = read_dump_atoms(self.workdir / f"{self.name}_{index}.dump")
            frames.append({
                "config_type": config_type,
                "energy": energy,
                "lattice": [lx, 0.0, 0.0, xy, ly, 0.0, xz, yz, lz],
                "virial": [wxx, wxy, wxz, wxy, wyy, wyz, wxz, wyz, wzz],
                "positions": [(x - xlo, y - ylo, z - zlo) for x, y, z, _, _, _ in atoms],
                "forces": [(fx, fy, fz) for _, _, _, fx, fy, fz in atoms],
            })
        return frames


def thermostat(start, end, pressure=None):
    """Nose-Hoover NVT, or NPT at `pressure` bar: it adds no forces (unlike Langevin), so the
    dumped forces are SW's alone."""
    if pressure is None:
        return f"fix             md all nvt temp {start} {end} 0.1"
    return f"fix             md all npt temp {start} {end} 0.1 iso {pressure} {pressure} 1.0"


def read_dump_atoms(path):
    lines = path.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ITEM: ATOMS")) + 1
    return [tuple(map(float, line.split()[1:7])) for line in lines[start:] if line.strip()]


def write_extended_xyz(path, frames):
    with open(path, "w") as out:
        for frame in frames:
            lattice = " ".join(f"{v:.8f}" for v in frame["lattice"])
            virial = " ".join(f"{v:.8f}" for v in frame["virial"])
            out.write(f"{len(frame['positions'])}\n")
            out.write(f'Lattice="{lattice}" Properties=species:S:1:pos:R:3:forces:R:3 '
                      f'energy={frame["energy"]:.8f} virial="{virial}" '
                      f'config_type={frame["config_type"]} pbc="T T T"\n')
            for (x, y, z), (fx, fy, fz) in zip(frame["positions"], frame["forces"]):
                out.write(f"Si {x:.8f} {y:.8f} {z:.8f} {fx:.8f} {fy:.8f} {fz:.8f}\n")


# ---- the families of configurations; `split` holds the seeds, temperatures and strains ----------

def rattle(script, seed, amplitude=0.05):
    """Random displacements up to amplitude Å: breaks symmetry so that minimize can leave saddle
    points (the ideal (100) surface, the symmetric vacancy) for the reconstructed minima."""
    script.add(f"displace_atoms  all random {amplitude} {amplitude} {amplitude} {seed} units box")


def crystal_md(script, split):
    for temperature, seed in zip(split["temperatures"], split["seeds"]):
        script.diamond()
        script.thermalize(temperature, 1000, seed)
        script.sample_md(f"crystal_{temperature}K", split["crystal_frames"])


def liquid_and_quench(script, split):
    """Melts at 3000 K (zero pressure: liquid Si is denser), samples 3000 and 2500 K, then quenches
    to 300 K over 10 ps; the quench passes through the supercooled liquid into an amorphous solid."""
    script.diamond()
    script.thermalize(3000, 5000, split["seeds"][0], pressure=0.0)
    script.sample_md("liquid_3000K", split["liquid_frames"])
    script.change_thermostat(3000, 2500, pressure=0.0)
    script.continue_md(2000)
    script.sample_md("liquid_2500K", split["liquid_frames"])
    script.change_thermostat(2500, 300, pressure=0.0)
    quench_steps = 10000
    interval_runs = quench_steps // (split["quench_frames"] * SNAPSHOT_INTERVAL)
    for _ in range(split["quench_frames"]):
        script.continue_md((interval_runs - 1) * SNAPSHOT_INTERVAL)
        script.sample_md("quench", 1)


def strained(script, split):
    """Elastic response: each strain unrelaxed (homogeneous), relaxed and thermal. Only shear moves
    the two fcc sublattices of diamond against each other (internal strain); under normal strains
    the relaxed cell is the unrelaxed one, so it is not written twice."""
    for strain, seed in zip(split["strains"], split["seeds"]):
        script.diamond()
        script.deform(**strain)
        script.snapshot("strain_unrelaxed")
        if any(strain.get(tilt, 0.0) for tilt in ("gxy", "gxz", "gyz")):
            script.relax()
            script.snapshot("strain_relaxed")
        script.thermalize(split["strain_temperature"], 500, seed)
        script.sample_md("strain_thermal", split["strain_thermal_frames"])


def relax_then_sample(script, name, temperature, seed, n_frames):
    """A defect cell rattled and relaxed (one frame), then MD frames at the temperature."""
    rattle(script, seed)
    script.relax()
    script.snapshot(f"{name}_relaxed")
    script.thermalize(temperature, 1000, seed)
    script.sample_md(f"{name}_{temperature}K", n_frames)


def vacancy(script, split):
    for temperature, seed in zip(split["vacancy_temperatures"], split["seeds"]):
        script.diamond()
        script.add("group vacancy id 1\ndelete_atoms group vacancy")
        relax_then_sample(script, "vacancy", temperature, seed, split["vacancy_frames"])


def surface_slab(script, split):
    """A (100) slab of 8 atomic layers (64 atoms) with ~15 Å of vacuum along z; still periodic."""
    for temperature, seed in zip(split["slab_temperatures"], split["seeds"]):
        script.diamond()
        script.add(f"change_box      all z final 0 $(lz+15.0) units box\n"
                   f"displace_atoms  all move 0 0 7.5 units box")
        script.snapshot("slab_unrelaxed")
        relax_then_sample(script, "slab", temperature, seed, split["slab_frames"])


def equation_of_state(script, split):
    """The perfect crystal, and the same with random displacements up to 0.05 Å, at several a."""
    for lattice_constant, seed in zip(split["eos_lattice_constants"], split["seeds"]):
        script.diamond(lattice_constant)
        script.snapshot("eos_perfect")
        rattle(script, seed)
        script.snapshot("eos_rattled")


def isolated_atoms(script, split):
    """Atoms farther apart than any cutoff: zero energy, the reference a cohesive energy needs.

    A machine-learned model is not zero there by construction (its per-atom energy of an atom
    without neighbours is just another output), so it has to be told."""
    for separation in split["isolated_separations"]:
        script.diamond()
        script.add(f"delete_atoms    group all\n"
                   f"change_box      all x final 0 20 y final 0 20 z final 0 20 units box\n"
                   f"create_atoms    1 single 5 10 10 units box")
        if separation:
            script.add(f"create_atoms    1 single {5 + separation} 10 10 units box")
        script.snapshot("isolated")


FAMILIES = [crystal_md, liquid_and_quench, strained, vacancy, surface_slab, equation_of_state, isolated_atoms]

SPLITS = {
    "train": {
        "seeds": list(range(1001, 1031)),
        "temperatures": [300, 600, 900, 1200, 1500],
        "crystal_frames": 30,
        "liquid_frames": 10,
        "quench_frames": 20,
        "strains": [dict(exx=e, eyy=e, ezz=e) for e in (-0.03, -0.015, 0.015, 0.03)]
        + [dict(exx=-0.03), dict(exx=0.03), dict(ezz=-0.02), dict(ezz=0.02)]
        + [dict(gxy=0.03), dict(gxy=-0.03), dict(gyz=0.03), dict(gxz=-0.03)]
        + [dict(exx=0.02, eyy=-0.02, gxy=0.02)],
        "strain_temperature": 600,
        "strain_thermal_frames": 3,
        "vacancy_temperatures": [600, 1200],
        "vacancy_frames": 6,
        "slab_temperatures": [300, 600, 900],
        "slab_frames": 5,
        "eos_lattice_constants": [5.2 + 0.05 * k for k in range(11)],
        "isolated_separations": [0, 6.0],
    },
    "test": {
        "seeds": list(range(5001, 5031)),
        "temperatures": [450, 750, 1050, 1350],
        "crystal_frames": 6,
        "liquid_frames": 3,
        "quench_frames": 4,
        "strains": [dict(exx=0.02, eyy=0.02, ezz=0.02), dict(eyy=-0.025), dict(gxz=0.025),
                    dict(exx=-0.01, ezz=0.02, gyz=-0.02)],
        "strain_temperature": 450,
        "strain_thermal_frames": 3,
        "vacancy_temperatures": [900],
        "vacancy_frames": 4,
        "slab_temperatures": [450],
        "slab_frames": 4,
        "eos_lattice_constants": [5.25, 5.375, 5.475, 5.625],
        "isolated_separations": [],
    },
}


def make_split(lmp, sw_file, split_name, workdir):
    frames = []
    for family in FAMILIES:
        script = DataScript(workdir, f"{split_name}_{family.__name__}", sw_file)
        family(script, SPLITS[split_name])
        frames += script.run(lmp)
    return frames


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lmp", default=str(lmp_driver.DEFAULT_LMP), help="LAMMPS executable (default: %(default)s)")
    parser.add_argument("--lammps-src", help="LAMMPS source tree holding potentials/Si.sw (default: $LAMMPS_SRC or next to --lmp's binary)")
    parser.add_argument("--out", default=str(lmp_driver.HERE / "data"), help="output folder (default: %(default)s)")
    parser.add_argument("--keep", action="store_true", help="keep the LAMMPS inputs, logs and dumps in OUT/work")
    args = parser.parse_args()

    sw_file = lmp_driver.sw_potential_file(args.lmp, args.lammps_src)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as temporary:
        workdir = out / "work" if args.keep else pathlib.Path(temporary)
        workdir.mkdir(exist_ok=True)
        for split_name in SPLITS:
            frames = make_split(args.lmp, sw_file, split_name, workdir)
            path = out / f"{split_name}.xyz"
            write_extended_xyz(path, frames)
            atoms = sum(len(frame["positions"]) for frame in frames)
            print(f"{path}: {len(frames)} configurations, {atoms} atoms, {path.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
