"""ctypes bindings of the part of klay.h (src/include/klay.h) the calculator uses.

The structs mirror klay.h field by field; every call that can fail raises KLayError with the
runtime's message.
"""
import ctypes
import os

from ._library import LIBRARY

ERROR_SIZE = 8192  # room for YAML errors with file:line:col and long weight-check lists

c_double_p = ctypes.POINTER(ctypes.c_double)
c_int64_p = ctypes.POINTER(ctypes.c_int64)
c_int_p = ctypes.POINTER(ctypes.c_int)

FLOAT64, FLOAT32 = 0, 1  # klay_dtype
OUTPUT_PER_ATOM_ENERGY = 1  # klay_output


class KLayError(RuntimeError):
    """A failure reported by the klay runtime; the message is the runtime's."""


class ModelOptions(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("num_threads", ctypes.c_int)]


class Atoms(ctypes.Structure):
    _fields_ = [("n_atoms", ctypes.c_int64), ("n_owned", ctypes.c_int64), ("coords", c_double_p),
                ("species", c_int64_p), ("n_edges", ctypes.c_int64), ("edge_pairs", c_int64_p),
                ("n_stage_graphs", ctypes.c_int), ("stage_edges", c_int64_p)]


class Results(ctypes.Structure):
    _fields_ = [("energy", ctypes.c_double), ("per_atom_energy", c_double_p), ("forces", c_double_p),
                ("edge_gradients", c_double_p), ("per_atom_virial", c_double_p),
                ("virial", ctypes.c_double * 6), ("forward_seconds", ctypes.c_double),
                ("backward_seconds", ctypes.c_double)]


class NeighborList(ctypes.Structure):
    _fields_ = [("n_owned", ctypes.c_int64), ("owned", c_int_p), ("n_atoms", ctypes.c_int64),
                ("coords", c_double_p), ("numneigh", c_int_p), ("firstneigh", ctypes.POINTER(c_int_p)),
                ("neighbor_mask", ctypes.c_int)]


class StagedGraph(ctypes.Structure):
    _fields_ = [("n_atoms", ctypes.c_int64), ("n_owned", ctypes.c_int64), ("atoms", c_int64_p),
                ("model_index", c_int64_p), ("n_edges", ctypes.c_int64), ("edge_pairs", c_int64_p),
                ("n_stage_graphs", ctypes.c_int), ("stage_edges", c_int64_p), ("workspace", ctypes.c_void_p)]


def _load_library():
    lib = ctypes.CDLL(os.environ.get("KLAY_LIBRARY", LIBRARY))
    err = [ctypes.c_char_p, ctypes.c_size_t]
    signatures = {
        "klay_model_load": (ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p, ctypes.POINTER(ModelOptions)] + err),
        "klay_model_free": (None, [ctypes.c_void_p]),
        "klay_model_cutoff": (ctypes.c_double, [ctypes.c_void_p]),
        "klay_model_num_stages": (ctypes.c_int, [ctypes.c_void_p]),
        "klay_model_num_graph_inputs": (ctypes.c_int, [ctypes.c_void_p]),
        "klay_model_element_code": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_char_p, c_int64_p] + err),
        "klay_model_check_outputs": (ctypes.c_int, [ctypes.c_void_p, ctypes.c_int] + err),
        "klay_model_compute": (ctypes.c_int, [ctypes.c_void_p, ctypes.POINTER(Atoms), ctypes.POINTER(Results)] + err),
        "klay_staged_graph_init": (None, [ctypes.POINTER(StagedGraph)]),
        "klay_staged_graph_free": (None, [ctypes.POINTER(StagedGraph)]),
        "klay_build_staged_graph": (ctypes.c_int, [ctypes.POINTER(NeighborList), ctypes.c_double, ctypes.c_int,
                                                   ctypes.POINTER(StagedGraph)] + err),
    }
    for name, (restype, argtypes) in signatures.items():
        function = getattr(lib, name)
        function.restype, function.argtypes = restype, argtypes
    return lib


lib = _load_library()


def checked(function, *args):
    """Calls a klay.h function whose last two parameters are (char *err, size_t err_size) and that
    fails by returning NULL or -1; raises KLayError with the runtime's message."""
    err = ctypes.create_string_buffer(ERROR_SIZE)
    result = function(*args, err, ERROR_SIZE)
    if (not result) if function.restype is ctypes.c_void_p else result != 0:
        raise KLayError(err.value.decode("ascii", "replace"))
    return result


def pointer(array, ctype):
    """A ctypes pointer to a C-contiguous numpy array (which the caller keeps alive)."""
    return array.ctypes.data_as(ctypes.POINTER(ctype))
