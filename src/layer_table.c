/* The registered KLay layer types (docs/layers.md#registry), as a plain C table so that the
 * torch-free builder can validate a model: this is the one declaration of each layer's ports,
 * config keys (with their types and defaults) and traits. The C++ registry (register_layer in
 * src/layers/layer.cpp, called by each layer's file) attaches an implementation to each name; the
 * runtime's Config reads keys and defaults from here, and tests/layers/test_layer_declarations.cpp
 * checks that both list the same layers and ports. */
#include "klay_builder.h"
#include "klay_layer_table.h"

#define PORTS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define ARGS(...) ((const klay_config_arg[]){__VA_ARGS__, {NULL, KLAY_CONFIG_ANY, NULL}})
#define NO_ARGS ((const klay_config_arg[]){{NULL, KLAY_CONFIG_ANY, NULL}})
/* A key the model must set, and one with a default (YAML text; "null": optional, no value). */
#define REQUIRED(name, type) {name, KLAY_CONFIG_##type, NULL}
#define OPTIONAL(name, type, default_yaml) {name, KLAY_CONFIG_##type, default_yaml}

/* InteractionBlock and AttentionInteractionBlock read the same keys; only the default radial
 * activation differs. */
#define INTERACTION_BLOCK_ARGS(scalar_activation)                                                      \
    ARGS(REQUIRED("irreps_in", IRREPS), REQUIRED("irreps_out", IRREPS),                                \
         REQUIRED("node_attr_irreps", IRREPS), REQUIRED("edge_attr_irreps", IRREPS),                   \
         REQUIRED("edge_embedding_irreps", IRREPS), OPTIONAL("invariant_layers", INT, "1"),            \
         OPTIONAL("invariant_neurons", INT, "8"), OPTIONAL("avg_num_neighbors", FLOAT, "null"),        \
         OPTIONAL("use_sc", BOOL, "true"), OPTIONAL("nonlinearity_scalars", MAP, scalar_activation))

static const klay_layer_spec specs[] = {
    {"OneHotAtomEncoding", "EMBEDDING", PORTS("x"), PORTS("one_hot"),
     ARGS(REQUIRED("num_elems", INT), OPTIONAL("input_is_atomic_number", BOOL, "false")), KLAY_AGG_NONE, NULL, 0},
    {"BinaryAtomicNumberEncoding", "EMBEDDING", PORTS("x"), PORTS("representation"), NO_ARGS,
     KLAY_AGG_NONE, NULL, 0},
    {"ElectronicConfigurationEncoding", "EMBEDDING", PORTS("x"), PORTS("representation"), NO_ARGS,
     KLAY_AGG_NONE, NULL, 0},
    {"SphericalHarmonicEdgeAttrs", "EMBEDDING", PORTS("pos", "edge_index", "shift"),
     PORTS("edge_vec", "edge_lengths", "edge_sh"),
     ARGS(OPTIONAL("lmax", INT, "1"), OPTIONAL("normalization", STRING, "component")), KLAY_AGG_NONE, NULL, 0},
    {"RadialBasisEdgeEncoding", "EMBEDDING", PORTS("edge_lengths"), PORTS("edge_length_embedded"),
     ARGS(REQUIRED("r_max", FLOAT), OPTIONAL("num_radial_basis", INT, "8"),
          OPTIONAL("polynomial_degree", FLOAT, "6"), OPTIONAL("radial_basis_trainable", BOOL, "true"),
          OPTIONAL("basis", STRING, "BesselBasis"), OPTIONAL("cutoff", STRING, "PolynomialCutoff"),
          OPTIONAL("basis_kwargs", MAP, "{}"), OPTIONAL("cutoff_kwargs", MAP, "{}")),
     KLAY_AGG_NONE, NULL, KLAY_TRAIT_CUTOFF_RADIUS},
    {"BesselBasis", "EMBEDDING", PORTS("x"), PORTS("y"),
     ARGS(REQUIRED("r_max", FLOAT), OPTIONAL("num_radial_basis", INT, "8"), OPTIONAL("trainable", BOOL, "true")),
     KLAY_AGG_NONE, NULL, KLAY_TRAIT_CUTOFF_RADIUS},
    {"PolynomialCutoff", "EMBEDDING", PORTS("x"), PORTS("y"),
     ARGS(REQUIRED("r_max", FLOAT), OPTIONAL("polynomial_degree", FLOAT, "6")), KLAY_AGG_NONE, NULL,
     KLAY_TRAIT_CUTOFF_RADIUS},
    {"AtomwiseLinear", "LINEAR", PORTS("h"), PORTS("h"),
     ARGS(REQUIRED("irreps_in_block", IRREPS_BLOCKS), REQUIRED("irreps_out_block", IRREPS_BLOCKS)),
     KLAY_AGG_NONE, NULL, 0},
    {"GatedAtomwiseLinear", "LINEAR", PORTS("h"), PORTS("h"),
     ARGS(REQUIRED("irreps_in_block", IRREPS_BLOCKS), REQUIRED("irreps_out_block", IRREPS_BLOCKS)),
     KLAY_AGG_NONE, NULL, 0},
    {"AtomwiseSumIndex", "LINEAR", PORTS("src", "index"), PORTS("h"), NO_ARGS, KLAY_AGG_NONE, NULL,
     KLAY_TRAIT_INDEXED_SUM},
    {"KIMAPISumIndex", "LINEAR", PORTS("src", "index"), PORTS("h"), NO_ARGS, KLAY_AGG_NONE, NULL,
     KLAY_TRAIT_INDEXED_SUM | KLAY_TRAIT_SUM_RETURNS_ROW0},
    {"AutogradForces", "AUTOGRAD", PORTS("energy", "pos"), PORTS("forces"), NO_ARGS, KLAY_AGG_NONE, NULL,
     KLAY_TRAIT_GRADIENT_WRT_POS},
    {"InteractionBlock", "CONVOLUTION", PORTS("x", "h", "edge_length_embeddings", "edge_sh", "edge_index"),
     PORTS("h"), INTERACTION_BLOCK_ARGS("{e: silu}"), KLAY_AGG_EDGE_SOURCE, "edge_index", 0},
    {"ConvNetLayer", "CONVOLUTION", PORTS("x", "h", "edge_length_embeddings", "edge_sh", "edge_index"),
     PORTS("h"),
     ARGS(REQUIRED("hidden_irreps_lmax", INT), REQUIRED("edge_sh_lmax", INT), REQUIRED("conv_feature_size", INT),
          REQUIRED("input_block", IRREPS_BLOCKS), REQUIRED("node_attr_block", IRREPS_BLOCKS),
          OPTIONAL("avg_neigh", FLOAT, "1"), OPTIONAL("num_radial_basis", INT, "8"),
          OPTIONAL("convolution_kwargs", MAP, "{}"), OPTIONAL("resnet", BOOL, "false"),
          OPTIONAL("parity", BOOL, "true"), OPTIONAL("radial_network_hidden_dim", INT, "64"),
          OPTIONAL("radial_network_layers", INT, "2"), OPTIONAL("nonlinearity_type", STRING, "gate"),
          OPTIONAL("nonlinearity_scalars", MAP, "{e: silu, o: tanh}"),
          OPTIONAL("nonlinearity_gates", MAP, "{e: silu, o: abs}")),
     KLAY_AGG_EDGE_SOURCE, "edge_index", 0},
    {"MACE_layer", "CONVOLUTION", PORTS("vectors", "node_feats", "node_attrs", "edge_feats", "edge_index"),
     PORTS("node_feats"),
     ARGS(REQUIRED("lmax", INT), REQUIRED("correlation", INT), REQUIRED("num_elements", INT),
          REQUIRED("hidden_irreps_block", IRREPS_BLOCKS), REQUIRED("input_block", IRREPS_BLOCKS),
          OPTIONAL("num_radial_basis", INT, "8"), OPTIONAL("node_attr_block", IRREPS_BLOCKS, "null"),
          OPTIONAL("avg_num_neighbors", FLOAT, "1.0"), OPTIONAL("use_sc", BOOL, "true")),
     KLAY_AGG_EDGE_TARGET, "edge_index", 0},
    {"E3Attention", "ATTENTION", PORTS("f", "edge_index", "edge_lengths", "edge_sh", "edge_length_embeddings"),
     PORTS("f_out"),
     ARGS(REQUIRED("irreps_input_block", IRREPS_BLOCKS), REQUIRED("irreps_query_block", IRREPS_BLOCKS),
          REQUIRED("irreps_key_block", IRREPS_BLOCKS), REQUIRED("irreps_value_block", IRREPS_BLOCKS),
          REQUIRED("edge_sh_lmax", INT), OPTIONAL("number_of_basis", INT, "8"),
          OPTIONAL("max_radius", FLOAT, "4.0"), OPTIONAL("radial_neurons", INT, "16")),
     KLAY_AGG_EDGE_TARGET, "edge_index", 0},
    {"E3AttentionPooling", "ATTENTION", PORTS("f"), PORTS("f_out"),
     ARGS(REQUIRED("irreps_input_block", IRREPS_BLOCKS), REQUIRED("irreps_query_block", IRREPS_BLOCKS),
          REQUIRED("irreps_key_block", IRREPS_BLOCKS)),
     KLAY_AGG_NONE, NULL, 0},
    {"RadialAttention", "ATTENTION", PORTS("r_ijs"), PORTS("attention"),
     ARGS(REQUIRED("n_input", INT), REQUIRED("n_hidden_layers", INT), REQUIRED("hidden_layer_width", INT),
          OPTIONAL("nonlinearity", STRING, "silu")),
     KLAY_AGG_NONE, NULL, 0},
    {"AttentionInteractionBlock", "ATTENTION",
     PORTS("x", "h", "edge_length_embeddings", "edge_sh", "edge_index", "r_ijs"), PORTS("h"),
     INTERACTION_BLOCK_ARGS("{e: ssp}"), KLAY_AGG_EDGE_SOURCE, "edge_index", 0},
    {"EGCL", "CONVOLUTION", PORTS("h", "coords", "edge_index", "shift_vectors", "batch"),
     PORTS("h", "coords"),
     ARGS(OPTIONAL("input_dim", INT, "32"), OPTIONAL("hidden_dim", INT, "32"), OPTIONAL("edge_dim", INT, "0"),
          /* a torch module instance in Python (SiLU); YAML cannot set it */
          OPTIONAL("activation", ANY, "null"), OPTIONAL("n_hidden_layers", INT, "1"),
          OPTIONAL("normalize_radial", BOOL, "false")),
     KLAY_AGG_EDGE_TARGET, "edge_index", 0},
    /* The torch callable's own arguments are open-ended: they go in `args` and `kwargs`, which the
     * layer binds to the callable's signature. */
    {"ArbitraryModule", "ARBITRARY", PORTS("*"), PORTS("*"),
     ARGS(REQUIRED("target", STRING), OPTIONAL("args", LIST, "null"), OPTIONAL("kwargs", MAP, "null"),
          /* the shared library of a torch.ops target, the file of a torchscript target */
          OPTIONAL("library", STRING, "null"), OPTIONAL("path", STRING, "null")),
     KLAY_AGG_NONE, NULL, 0},
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
