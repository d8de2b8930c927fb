"""KLayCalculator: an ASE calculator over the klay runtime's C API.

A periodic structure is fed the way `klay eval` and the LAMMPS pair style feed one: the cell's
atoms are owned, their periodic images out to D * r_cut (+ 0.5 A) are explicit ghost atoms, and
klay_build_staged_graph gives the staged graphs; forces on images fold back onto their atoms.
"""
import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.neighborlist import neighbor_list

from ._capi import KLayError
from .model import Model

PADDING_MARGIN = 0.5  # A beyond D * r_cut, as `klay eval` pads (src/md/staged.hpp)
# klay.h's virial order xx, yy, zz, xy, xz, yz -> ASE's Voigt order xx, yy, zz, yz, xz, xy
TO_ASE_VOIGT = [0, 1, 2, 5, 4, 3]


def with_ghost_images(atoms, reach):
    """The atoms followed by every periodic image (offset S != 0) within `reach` of one of them,
    ordered by (S, atom). Returns (coords, image_of)."""
    n = len(atoms)
    coords, image_of = atoms.positions, np.arange(n)
    if not atoms.pbc.any():
        return coords, image_of
    _, j, offsets = neighbor_list("ijS", atoms, reach)
    images = np.unique(np.column_stack([offsets, j])[offsets.any(axis=1)], axis=0)
    image_coords = atoms.positions[images[:, 3]] + images[:, :3] @ atoms.cell.array
    return np.concatenate([coords, image_coords]), np.concatenate([image_of, images[:, 3]])


def full_neighbor_list(coords, cutoff):
    """Every pair closer than the cutoff, both ways, in CSR form (first, neighbors)."""
    # ASE bins open systems by their cell: give it the bounding box (a zero cell is ~100x slower)
    low = coords.min(axis=0)
    cluster = Atoms(positions=coords - low, cell=np.diag(coords.max(axis=0) - low + cutoff), pbc=False)
    i, j = neighbor_list("ij", cluster, cutoff)
    order = np.argsort(i, kind="stable")
    first = np.concatenate([[0], np.cumsum(np.bincount(i, minlength=len(coords)))])
    return first, j[order]


class KLayCalculator(Calculator):
    """Energy, forces, stress and per-atom energies of a KLay model (YAML + trained weights).

    dtype: 'float64' (the reference) or 'float32'; num_threads: intra-op threads (0 leaves the
    runtime's default). Runtime failures (a missing file, an element the model does not know)
    raise KLayError with the runtime's message."""

    implemented_properties = ["energy", "free_energy", "forces", "stress", "energies"]

    def __init__(self, model_yaml, weights, dtype="float64", num_threads=0, **kwargs):
        super().__init__(**kwargs)
        self.model = Model(model_yaml, weights, dtype, num_threads)

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        n = len(atoms)
        codes = np.array([self._element_code(k, symbol) for k, symbol in enumerate(atoms.get_chemical_symbols())],
                         np.int64)
        model = self.model
        if model.has_graph:
            coords, image_of = with_ghost_images(atoms, model.num_stages * model.cutoff + PADDING_MARGIN)
            first, neighbors = full_neighbor_list(coords, model.cutoff)
            fed, edge_pairs, stage_edges = model.staged_graph(coords, n, first, neighbors)
            coords, image_of = coords[fed], image_of[fed]
        else:
            coords, image_of = atoms.positions, np.arange(n)
            edge_pairs, stage_edges = np.empty((0, 2), np.int64), np.empty(0, np.int64)

        energy, model_forces, energies, virial = model.compute(coords, n, codes[image_of], edge_pairs, stage_edges)
        forces = np.zeros((n, 3))
        np.add.at(forces, image_of, model_forces)
        self.results = {"energy": energy, "free_energy": energy, "forces": forces}
        if energies is not None:
            self.results["energies"] = energies
        if atoms.pbc.all():
            self.results["stress"] = -virial[TO_ASE_VOIGT] / atoms.get_volume()

    def _element_code(self, index, symbol):
        try:
            return self.model.element_code(symbol)
        except KLayError as error:
            raise KLayError(f"atom {index} ({symbol}): {error}") from None
