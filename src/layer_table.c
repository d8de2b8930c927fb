/* The registered KLay layer types with their ports (docs/layers.md#registry), as a plain C table so
 * that the torch-free builder can validate port names. The C++ registry (register_layer in
 * src/layers/layer.cpp, called by each layer's file) attaches an implementation to each name; this
 * table is the single source of port names and config defaults. */
#include "klay_builder.h"
#include "klay_layer_table.h"

#define PORTS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ARGS(...) ((const klay_config_arg[]){__VA_ARGS__, {NULL, NULL}})
#define NO_ARGS ((const klay_config_arg[]){{NULL, NULL}})

static const klay_layer_spec specs[] = {
    {"OneHotAtomEncoding", "EMBEDDING", PORTS("x"), PORTS("one_hot"),
     ARGS({"num_elems", NULL}, {"input_is_atomic_number", "False"}), KLAY_AGG_NONE, NULL},
    {"BinaryAtomicNumberEncoding", "EMBEDDING", PORTS("x"), PORTS("representation"), NO_ARGS,
     KLAY_AGG_NONE, NULL},
    {"ElectronicConfigurationEncoding", "EMBEDDING", PORTS("x"), PORTS("representation"), NO_ARGS,
     KLAY_AGG_NONE, NULL},
    {"SphericalHarmonicEdgeAttrs", "EMBEDDING", PORTS("pos", "edge_index", "shift"),
     PORTS("edge_vec", "edge_lengths", "edge_sh"),
     ARGS({"lmax", "1"}, {"normalization", "\"component\""}), KLAY_AGG_NONE, NULL},
    {"RadialBasisEdgeEncoding", "EMBEDDING", PORTS("edge_lengths"), PORTS("edge_length_embedded"),
     ARGS({"r_max", NULL}, {"num_radial_basis", "8"}, {"polynomial_degree", "6"},
          {"radial_basis_trainable", "True"}, {"basis", "\"BesselBasis\""},
          {"cutoff", "\"PolynomialCutoff\""}, {"basis_kwargs", "{}"}, {"cutoff_kwargs", "{}"}),
     KLAY_AGG_NONE, NULL},
    {"BesselBasis", "EMBEDDING", PORTS("x"), PORTS("y"),
     ARGS({"r_max", NULL}, {"num_radial_basis", "8"}, {"trainable", "True"}), KLAY_AGG_NONE, NULL},
    {"PolynomialCutoff", "EMBEDDING", PORTS("x"), PORTS("y"),
     ARGS({"r_max", NULL}, {"polynomial_degree", "6"}), KLAY_AGG_NONE, NULL},
    {"AtomwiseLinear", "LINEAR", PORTS("h"), PORTS("h"),
     ARGS({"irreps_in_block", NULL}, {"irreps_out_block", NULL}), KLAY_AGG_NONE, NULL},
    {"GatedAtomwiseLinear", "LINEAR", PORTS("h"), PORTS("h"),
     ARGS({"irreps_in_block", NULL}, {"irreps_out_block", NULL}), KLAY_AGG_NONE, NULL},
    {"AtomwiseSumIndex", "LINEAR", PORTS("src", "index"), PORTS("h"), NO_ARGS, KLAY_AGG_NONE, NULL},
    {"KIMAPISumIndex", "LINEAR", PORTS("src", "index"), PORTS("h"), NO_ARGS, KLAY_AGG_NONE, NULL},
    {"AutogradForces", "AUTOGRAD", PORTS("energy", "pos"), PORTS("forces"), NO_ARGS, KLAY_AGG_NONE,
     NULL},
    {"InteractionBlock", "CONVOLUTION", PORTS("x", "h", "edge_length_embeddings", "edge_sh", "edge_index"),
     PORTS("h"),
     ARGS({"irreps_in", NULL}, {"irreps_out", NULL}, {"node_attr_irreps", NULL},
          {"edge_attr_irreps", NULL}, {"edge_embedding_irreps", NULL}, {"invariant_layers", "1"},
          {"invariant_neurons", "8"}, {"avg_num_neighbors", "None"}, {"use_sc", "True"},
          {"nonlinearity_scalars", "{e: silu}"}),
     KLAY_AGG_EDGE_SOURCE, "edge_index"},
    {"ConvNetLayer", "CONVOLUTION", PORTS("x", "h", "edge_length_embeddings", "edge_sh", "edge_index"),
     PORTS("h"),
     ARGS({"hidden_irreps_lmax", NULL}, {"edge_sh_lmax", NULL}, {"conv_feature_size", NULL},
          {"input_block", NULL}, {"node_attr_block", NULL}, {"avg_neigh", "1"},
          {"num_radial_basis", "8"}, {"convolution_kwargs", "{}"}, {"resnet", "False"},
          {"parity", "True"}, {"radial_network_hidden_dim", "64"}, {"radial_network_layers", "2"},
          {"nonlinearity_type", "\"gate\""}, {"nonlinearity_scalars", "{e: silu, o: tanh}"},
          {"nonlinearity_gates", "{e: silu, o: abs}"}),
     KLAY_AGG_EDGE_SOURCE, "edge_index"},
    {"MACE_layer", "CONVOLUTION", PORTS("vectors", "node_feats", "node_attrs", "edge_feats", "edge_index"),
     PORTS("node_feats"),
     ARGS({"lmax", NULL}, {"correlation", NULL}, {"num_elements", NULL},
          {"hidden_irreps_block", NULL}, {"input_block", NULL}, {"num_radial_basis", "8"},
          {"node_attr_block", "None"}, {"avg_num_neighbors", "1.0"}, {"use_sc", "True"}),
     KLAY_AGG_EDGE_TARGET, "edge_index"},
    {"E3Attention", "ATTENTION", PORTS("f", "edge_index", "edge_lengths", "edge_sh", "edge_length_embeddings"),
     PORTS("f_out"),
     ARGS({"irreps_input_block", NULL}, {"irreps_query_block", NULL}, {"irreps_key_block", NULL},
          {"irreps_value_block", NULL}, {"edge_sh_lmax", NULL}, {"number_of_basis", "8"},
          {"max_radius", "4.0"}, {"radial_neurons", "16"}),
     KLAY_AGG_EDGE_TARGET, "edge_index"},
    {"E3AttentionPooling", "ATTENTION", PORTS("f"), PORTS("f_out"),
     ARGS({"irreps_input_block", NULL}, {"irreps_query_block", NULL}, {"irreps_key_block", NULL}),
     KLAY_AGG_NONE, NULL},
    {"RadialAttention", "ATTENTION", PORTS("r_ijs"), PORTS("attention"),
     ARGS({"n_input", NULL}, {"n_hidden_layers", NULL}, {"hidden_layer_width", NULL}), KLAY_AGG_NONE,
     NULL},
    {"AttentionInteractionBlock", "ATTENTION",
     PORTS("x", "h", "edge_length_embeddings", "edge_sh", "edge_index", "r_ijs"), PORTS("h"),
     ARGS({"irreps_in", NULL}, {"irreps_out", NULL}, {"node_attr_irreps", NULL},
          {"edge_attr_irreps", NULL}, {"edge_embedding_irreps", NULL}, {"invariant_layers", "1"},
          {"invariant_neurons", "8"}, {"avg_num_neighbors", "None"}, {"use_sc", "True"},
          {"nonlinearity_scalars", "{e: ssp}"}),
     KLAY_AGG_EDGE_SOURCE, "edge_index"},
    {"EGCL", "CONVOLUTION", PORTS("h", "coords", "edge_index", "shift_vectors", "batch"),
     PORTS("h", "coords"),
     ARGS({"input_dim", "32"}, {"hidden_dim", "32"}, {"edge_dim", "0"}, {"activation", "nn.SiLU()"},
          {"n_hidden_layers", "1"}, {"normalize_radial", "False"}),
     KLAY_AGG_EDGE_TARGET, "edge_index"},
    {"ArbitraryModule", "ARBITRARY", PORTS("*"), PORTS("*"),
     ARGS({"target", NULL}, {"args", "None"}, {"kwargs", "None"},
          /* C++ only: the shared library of a torch.ops target, the file of a torchscript target */
          {"library", "None"}, {"path", "None"}), KLAY_AGG_NONE, NULL},
};

static const klay_layer_table table = {sizeof specs / sizeof specs[0], specs};

const klay_layer_table *klay_layer_table_get(void) { return &table; }

const klay_layer_spec *klay_layer_table_find(const klay_layer_table *t, const char *name)
{
    for (size_t i = 0; i < t->count; ++i) {
        const char *a = t->specs[i].name, *b = name;
        while (*a && *a == *b) ++a, ++b;
        if (*a == *b) return &t->specs[i];
    }
    return NULL;
}
