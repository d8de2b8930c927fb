"""A KLay model in the klay runtime, fed numpy arrays: staged graphs and one evaluation."""
import ctypes
import os
import weakref

import numpy as np

from ._capi import (FLOAT32, FLOAT64, OUTPUT_PER_ATOM_ENERGY, Atoms, ModelOptions, NeighborList, Results,
                    StagedGraph, c_int_p, checked, lib, pointer)


def _array(c_pointer, count, dtype, columns=None):
    """A numpy copy of count (rows of) values the runtime owns."""
    shape = (count,) if columns is None else (count, columns)
    if count == 0:
        return np.empty(shape, dtype)
    return np.ctypeslib.as_array(c_pointer, shape).astype(dtype, copy=True)


class Model:
    """klay_model_load with the queries a host needs (cutoff, stages, element codes)."""

    def __init__(self, yaml_path, weights_path, dtype="float64", num_threads=0):
        if dtype not in ("float64", "float32"):
            raise ValueError(f"dtype must be 'float64' or 'float32', not {dtype!r}")
        options = ModelOptions(FLOAT64 if dtype == "float64" else FLOAT32, num_threads)
        self._handle = checked(lib.klay_model_load, os.fsencode(yaml_path), os.fsencode(weights_path),
                               ctypes.byref(options))
        self._graph = StagedGraph()
        lib.klay_staged_graph_init(ctypes.byref(self._graph))
        weakref.finalize(self, Model._free, self._handle, self._graph)
        self.cutoff = lib.klay_model_cutoff(self._handle)
        self.num_stages = lib.klay_model_num_stages(self._handle)
        self.has_graph = lib.klay_model_num_graph_inputs(self._handle) > 0
        self.has_per_atom_energy = lib.klay_model_check_outputs(self._handle, OUTPUT_PER_ATOM_ENERGY, None, 0) == 0
        self._codes = {}

    @staticmethod
    def _free(handle, graph):
        lib.klay_staged_graph_free(ctypes.byref(graph))
        lib.klay_model_free(handle)

    def element_code(self, symbol):
        """The number the model is fed for an element: its atomic number or its species index."""
        if symbol not in self._codes:
            code = ctypes.c_int64()
            checked(lib.klay_model_element_code, self._handle, symbol.encode(), ctypes.byref(code))
            self._codes[symbol] = code.value
        return self._codes[symbol]

    def staged_graph(self, coords, n_owned, first, neighbors):
        """klay_build_staged_graph over atoms [0, n_owned) owned and the rest ghosts, from a full
        neighbour list in CSR form (atom a's neighbours: neighbors[first[a]:first[a + 1]]).
        Returns (atoms, edge_pairs, stage_edges): the caller index of each model atom, owned first,
        then the edges in model indices with G_k = the first stage_edges[k] of them."""
        coords = np.ascontiguousarray(coords, np.float64)
        neighbors = np.ascontiguousarray(neighbors, np.intc)
        numneigh = np.ascontiguousarray(np.diff(first), np.intc)
        # firstneigh[a] = the address of atom a's first neighbour
        firstneigh = np.uint64(neighbors.ctypes.data) + np.asarray(first[:-1], np.uint64) * neighbors.itemsize
        listed = NeighborList(n_owned, None, len(coords), pointer(coords, ctypes.c_double),
                              pointer(numneigh, ctypes.c_int), firstneigh.ctypes.data_as(ctypes.POINTER(c_int_p)), 0)
        checked(lib.klay_build_staged_graph, ctypes.byref(listed), self.cutoff, self.num_stages,
                ctypes.byref(self._graph))
        g = self._graph
        return (_array(g.atoms, g.n_atoms, np.int64), _array(g.edge_pairs, g.n_edges, np.int64, 2),
                _array(g.stage_edges, g.n_stage_graphs, np.int64))

    def compute(self, coords, n_owned, species, edge_pairs, stage_edges):
        """Energy of the owned atoms, forces on every atom, per-atom energies (of the owned atoms, or
        None when the model gives none) and the virial (xx, yy, zz, xy, xz, yz; klay.h)."""
        coords = np.ascontiguousarray(coords, np.float64)
        species = np.ascontiguousarray(species, np.int64)
        edge_pairs = np.ascontiguousarray(edge_pairs, np.int64)
        stage_edges = np.ascontiguousarray(stage_edges, np.int64)
        n = len(coords)
        forces = np.zeros((n, 3))
        energies = np.zeros(n) if self.has_per_atom_energy else None
        atoms = Atoms(n, n_owned, pointer(coords, ctypes.c_double), pointer(species, ctypes.c_int64), len(edge_pairs),
                      pointer(edge_pairs, ctypes.c_int64), len(stage_edges), pointer(stage_edges, ctypes.c_int64))
        results = Results()
        results.forces = pointer(forces, ctypes.c_double)
        if energies is not None:
            results.per_atom_energy = pointer(energies, ctypes.c_double)
        checked(lib.klay_model_compute, self._handle, ctypes.byref(atoms), ctypes.byref(results))
        return (results.energy, forces, None if energies is None else energies[:n_owned],
                np.array(results.virial[:]))

