"""klay_ase.KLayCalculator on the examples/si model, float64: forces and stress against ASE's
central differences, energy and forces against `klay eval`, the bulk modulus of an EOS fit against
the elastic constants examples/si/README.md reports, per-atom energies, an open cluster, and bad
inputs raising the runtime's message.

Run by ctest with PYTHONPATH=build/python, KLAY_CLI=build/klay and KLAY_EXAMPLES_DIR=examples."""
import json
import os
import re
import subprocess
import tempfile
import unittest

import numpy as np
from ase import Atoms, units
from ase.build import bulk
from ase.calculators.calculator import PropertyNotImplementedError
from ase.eos import EquationOfState
from ase.io import read, write

from klay_ase import KLayCalculator, KLayError

EXAMPLE = os.path.join(os.environ["KLAY_EXAMPLES_DIR"], "si")
MODEL, WEIGHTS = os.path.join(EXAMPLE, "model.yaml"), os.path.join(EXAMPLE, "model.pth")


def rattled_silicon():
    """Diamond Si on a sheared, stretched cell with rattled atoms: no component of the forces or
    the stress vanishes by symmetry."""
    atoms = bulk("Si", "diamond", a=5.43, cubic=True)
    atoms.set_cell(atoms.cell.array @ [[1.01, 0.03, -0.02], [0.0, 0.99, 0.04], [0.02, 0.0, 1.0]], scale_atoms=True)
    atoms.rattle(0.05, seed=7)
    return atoms


def relative_difference(value, reference):
    return np.abs(np.asarray(value) - reference).max() / np.abs(reference).max()


class Calculator(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.calc = KLayCalculator(MODEL, WEIGHTS, dtype="float64")

    def test_forces_equal_numerical_forces(self):
        atoms = rattled_silicon()
        atoms.calc = self.calc
        numerical = self.calc.calculate_numerical_forces(atoms, d=1e-4)
        self.assertLessEqual(relative_difference(atoms.get_forces(), numerical), 1e-6)

    def test_stress_equals_numerical_stress(self):
        atoms = rattled_silicon()
        atoms.calc = self.calc
        numerical = self.calc.calculate_numerical_stress(atoms, d=1e-5)
        self.assertLessEqual(relative_difference(atoms.get_stress(), numerical), 1e-6)

    def test_energy_and_forces_equal_klay_eval(self):
        with tempfile.TemporaryDirectory() as directory:
            path = os.path.join(directory, "si.xyz")
            write(path, rattled_silicon(), format="extxyz")
            atoms = read(path)  # the structure exactly as `klay eval` reads it
            run = subprocess.run([os.environ["KLAY_CLI"], "eval", MODEL, WEIGHTS, path, "--json"],
                                 capture_output=True, text=True, check=True)
        reference = json.loads(run.stdout)
        atoms.calc = self.calc
        energy = atoms.get_potential_energy()
        self.assertLessEqual(abs(energy - reference["energy"]), 1e-12 * abs(reference["energy"]))
        self.assertLessEqual(relative_difference(atoms.get_forces(), np.array(reference["forces"])), 1e-12)
        # ASE's stress is -virial / volume; `klay eval` reports the virial (3x3, row-major)
        virial = np.array(reference["virial"]).reshape(3, 3)
        expected = -virial[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]] / atoms.get_volume()
        self.assertLessEqual(relative_difference(atoms.get_stress(), expected), 1e-12)

    def test_per_atom_energies_sum_to_the_energy(self):
        atoms = rattled_silicon()
        atoms.calc = self.calc
        energies = atoms.get_potential_energies()
        self.assertEqual(energies.shape, (len(atoms),))
        self.assertGreater(np.ptp(energies), 1e-4, "rattled atoms have different energies")
        self.assertAlmostEqual(energies.sum(), atoms.get_potential_energy(), delta=1e-12 * len(atoms))
        self.assertEqual(self.calc.get_property("free_energy", atoms), atoms.get_potential_energy())

    def test_eos_bulk_modulus_matches_the_reported_elastic_constants(self):
        # examples/si/README.md's property table (properties.py, LAMMPS finite strains):
        # a cubic crystal's bulk modulus is (C11 + 2 C12) / 3.
        with open(os.path.join(EXAMPLE, "README.md")) as readme:
            text = readme.read()
        c11, c12 = (float(re.search(rf"^\| {name} \| ([0-9.]+) GPa \|", text, re.M).group(1))
                    for name in ("C11", "C12"))
        a0 = float(re.search(r"^\| lattice constant a0 \| ([0-9.]+) Å \|", text, re.M).group(1))
        volumes, energies = [], []
        for scale in np.linspace(0.99, 1.01, 9):
            atoms = bulk("Si", "diamond", a=a0 * scale, cubic=True)
            atoms.calc = self.calc
            volumes.append(atoms.get_volume())
            energies.append(atoms.get_potential_energy())
        _, _, bulk_modulus = EquationOfState(volumes, energies, eos="birchmurnaghan").fit()
        reported = (c11 + 2 * c12) / 3
        print(f"EOS fit: B = {bulk_modulus / units.GPa:.2f} GPa; (C11 + 2 C12) / 3 = {reported:.2f} GPa")
        self.assertLessEqual(abs(bulk_modulus / units.GPa - reported), 0.01 * reported)

    def test_open_cluster(self):
        cluster = Atoms("Si10", positions=rattled_silicon().repeat((2, 1, 1)).positions[:10], pbc=False)
        cluster.positions[8:] += [5.0, 0.0, 0.0]  # two atoms further out
        cluster.calc = self.calc
        numerical = self.calc.calculate_numerical_forces(cluster, d=1e-4)
        self.assertLessEqual(relative_difference(cluster.get_forces(), numerical), 1e-6)
        self.assertAlmostEqual(cluster.get_potential_energies().sum(), cluster.get_potential_energy(), delta=1e-11)
        with self.assertRaises(PropertyNotImplementedError):
            cluster.get_stress()


class BadInputs(unittest.TestCase):
    def test_an_element_the_model_does_not_know_raises_the_runtime_message(self):
        atoms = rattled_silicon()
        atoms[3].symbol = "Ge"
        atoms.calc = KLayCalculator(MODEL, WEIGHTS)
        with self.assertRaises(KLayError) as raised:
            atoms.get_potential_energy()
        self.assertIn("atom 3 (Ge)", str(raised.exception))
        self.assertIn("element 'Ge' is not in the model's species list", str(raised.exception))

    def test_a_missing_file_raises_the_runtime_message(self):
        missing = os.path.join(EXAMPLE, "no_such_model.yaml")
        with self.assertRaises(KLayError) as raised:
            KLayCalculator(missing, WEIGHTS)
        # the same reason `klay eval` gives for it
        with tempfile.TemporaryDirectory() as directory:
            structure = os.path.join(directory, "si.xyz")
            write(structure, rattled_silicon(), format="extxyz")
            run = subprocess.run([os.environ["KLAY_CLI"], "eval", missing, WEIGHTS, structure],
                                 capture_output=True, text=True)
        self.assertIn("no_such_model.yaml", str(raised.exception))
        self.assertIn(str(raised.exception), run.stderr)

    def test_a_bad_dtype_is_refused(self):
        with self.assertRaises(ValueError):
            KLayCalculator(MODEL, WEIGHTS, dtype="float16")


if __name__ == "__main__":
    unittest.main()
