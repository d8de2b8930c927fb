/*
 * klay_builder.h — the KLay YAML front end (C11, libyaml, no torch).
 *
 * Load a KLay model YAML into a typed tree that keeps every node's source position,
 * resolve OmegaConf interpolations, validate the layer graph against a table of
 * registered layer types, and produce a build plan that the runtime instantiates.
 *
 * Ownership: every object returned by a klay_* constructor is freed by its matching
 * klay_*_free. Pointers into a document or plan stay valid until that object is freed.
 * Errors never abort: they are appended to a klay_diags list with file:line:col.
 *
 * Top-level sections: model_params, model_inputs, model_layers, model_outputs (KLay's), plus
 * `md:`, a free mapping ignored by Python KLay where a model may declare what the MD side cannot
 * infer (cutoff, species list, energy output, input-name mapping, units). The builder accepts it
 * without checking it and leaves it in the resolved root (klay_plan.root) for the runtime; any
 * other top-level key is a warning.
 */
#ifndef KLAY_BUILDER_H
#define KLAY_BUILDER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------- diagnostics ---------- */

typedef struct klay_mark {
    const char *file; /* source name ("<string>" for in-memory YAML); owned by the document */
    int line;         /* 1-based; 0 when unknown */
    int col;          /* 1-based; 0 when unknown */
} klay_mark;

typedef enum klay_severity { KLAY_WARNING = 1, KLAY_ERROR = 2 } klay_severity;

typedef struct klay_diag {
    klay_severity severity;
    klay_mark mark; /* mark.file is a copy owned by the diagnostic (it outlives the document) */
    char *message;  /* without the position prefix */
} klay_diag;

typedef struct klay_diags {
    size_t count;
    klay_diag *items;
} klay_diags;

void klay_diags_init(klay_diags *d);
void klay_diags_free(klay_diags *d);
size_t klay_diags_errors(const klay_diags *d);
/* "file:line:col: error: message" (one line per diagnostic) into buf; returns the length of the
 * full text without its terminating NUL (as snprintf: allocate the result + 1). */
size_t klay_diags_format(const klay_diags *d, char *buf, size_t size);

/* ---------- typed YAML tree ---------- */

typedef enum klay_node_kind {
    KLAY_NULL,
    KLAY_BOOL,
    KLAY_INT,
    KLAY_FLOAT,
    KLAY_STRING,
    KLAY_SEQ,
    KLAY_MAP
} klay_node_kind;

typedef struct klay_node klay_node;
struct klay_node {
    klay_node_kind kind;
    klay_mark mark;
    int boolean;    /* KLAY_BOOL */
    int64_t integer;/* KLAY_INT */
    double real;    /* KLAY_FLOAT */
    char *text;     /* KLAY_STRING value; for other scalars the source text */
    size_t len;     /* KLAY_SEQ / KLAY_MAP: number of items */
    klay_node **items; /* KLAY_SEQ elements, KLAY_MAP values */
    klay_node **keys;  /* KLAY_MAP keys (KLAY_STRING or KLAY_INT scalars); NULL for SEQ */
};

typedef struct klay_doc klay_doc;

/* Load and type a YAML document and resolve every ${...} interpolation.
 * Returns NULL (with errors in diags) on failure. */
klay_doc *klay_doc_load_file(const char *path, klay_diags *diags);
klay_doc *klay_doc_load_string(const char *yaml, size_t len, const char *name, klay_diags *diags);
void klay_doc_free(klay_doc *doc);
const klay_node *klay_doc_root(const klay_doc *doc);

/* Map lookup by string key (NULL if absent or not a map); sequence/map access by index. */
const klay_node *klay_map_get(const klay_node *map, const char *key);
const char *klay_node_kind_name(klay_node_kind kind);

/* ---------- the registered-layer table (provided by the runtime, see src/layer_table.c) ---------- */

typedef enum klay_aggregation {
    KLAY_AGG_NONE = 0,       /* not a message-passing stage */
    KLAY_AGG_EDGE_SOURCE = 1,/* sums messages onto edge_index[0] (NequIP convention) */
    KLAY_AGG_EDGE_TARGET = 2 /* sums messages onto edge_index[1] (MACE, E3Attention, EGCL) */
} klay_aggregation;

/* What a config value must be. The builder checks the kind (klay validate) and the runtime's
 * Config reads it; both accept null for an optional key (it means "use the default"). */
typedef enum klay_config_type {
    KLAY_CONFIG_INT,           /* an integer */
    KLAY_CONFIG_FLOAT,         /* a number (integers are accepted) */
    KLAY_CONFIG_BOOL,
    KLAY_CONFIG_STRING,
    KLAY_CONFIG_MAP,           /* a mapping whose keys the layer checks itself */
    KLAY_CONFIG_LIST,
    KLAY_CONFIG_IRREPS_BLOCKS, /* a list of {l, mul, p} blocks (docs/layers.md#irreps-blocks) */
    KLAY_CONFIG_IRREPS,        /* an e3nn irreps string or a list of blocks */
    KLAY_CONFIG_ANY            /* any value; the layer decides */
} klay_config_type;

typedef struct klay_config_arg {
    const char *name;
    klay_config_type type;
    const char *default_text; /* YAML text of the default ("null": optional, no value); NULL = required */
} klay_config_arg;

/* What the runtime needs to know about a layer type beyond its ports (bit flags). */
enum klay_layer_trait {
    KLAY_TRAIT_CUTOFF_RADIUS = 1,  /* its config's r_max is a radial cutoff: the MD cutoff is the largest */
    KLAY_TRAIT_INDEXED_SUM = 2,    /* sums port `src` by port `index` into one row per index value */
    KLAY_TRAIT_SUM_RETURNS_ROW0 = 4,/* an indexed sum that returns only row 0 in eval mode (KIM's
                                       convention: index by `contributions`, 0 = owned) */
    KLAY_TRAIT_GRADIENT_WRT_POS = 8 /* differentiates port `energy` with respect to port `pos`: the model
                                       makes the model input bound to `pos` track its gradient */
};

typedef struct klay_layer_spec {
    const char *name;                  /* registry name, e.g. "ConvNetLayer" */
    const char *category;              /* "EMBEDDING", "LINEAR", "CONVOLUTION", ... */
    const char *const *inputs;         /* NULL-terminated port names; {"*", NULL} = unrestricted */
    const char *const *outputs;        /* NULL-terminated; {"*", NULL} = unrestricted */
    const klay_config_arg *config_args;/* terminated by an entry with a NULL name */
    klay_aggregation aggregation;
    const char *edge_index_port;       /* input port carrying edge_index, NULL if none */
    unsigned traits;                   /* klay_layer_trait flags */
} klay_layer_spec;

typedef struct klay_layer_table {
    size_t count;
    const klay_layer_spec *specs;
} klay_layer_table;

/* The declaration of key `name` in spec, or NULL. */
const klay_config_arg *klay_config_arg_find(const klay_layer_spec *spec, const char *name);
/* Whether `value` (not null) is of `type`, and the type in words ("an integer") for messages. */
int klay_config_type_accepts(klay_config_type type, const klay_node *value);
const char *klay_config_type_text(klay_config_type type);
/* Checks a layer's config (NULL when the layer has none) against its declaration: no undeclared
 * key (an error with "did you mean") and every value of its declared kind. `klay validate` and the
 * runtime's Config both call it. Appends errors to diags and returns how many. */
size_t klay_config_check_keys(const klay_layer_spec *spec, const klay_node *config, const char *layer_name,
                              klay_diags *diags);
/* Every required key set (not null); `layer_mark` locates a layer without config. The runtime
 * reports a missing key when the layer reads it, at the same place. */
size_t klay_config_check_required(const klay_layer_spec *spec, const klay_node *config, const char *layer_name,
                                  klay_mark layer_mark, klay_diags *diags);

/* ---------- the build plan ---------- */

typedef enum klay_source_kind {
    KLAY_SRC_INPUT = 0, /* model input number `index` */
    KLAY_SRC_NODE = 1,  /* whole return value of plan node `index` */
    KLAY_SRC_ITEM = 2   /* element `key` of plan node `index`'s return value (an `output:` alias) */
} klay_source_kind;

typedef struct klay_source {
    klay_source_kind kind;
    int index;
    int key_is_int;      /* KLAY_SRC_ITEM: 1 = key_int, 0 = key_str */
    int64_t key_int;
    const char *key_str;
} klay_source;

typedef struct klay_binding {
    int64_t position;    /* positional port (YAML int key), or -1 for a keyword port */
    const char *keyword; /* keyword port name, NULL for positional */
    int port;            /* index into the spec's registered inputs; -1 for unrestricted ("*") layers */
    klay_source source;
    const char *reference; /* the reference text as written */
    klay_mark mark;
} klay_binding;

typedef struct klay_output_alias {
    int key_is_int;
    int64_t key_int;
    const char *key_str;
    const char *name;
    klay_mark mark;
} klay_output_alias;

typedef struct klay_plan_node {
    const char *name;
    const char *type;              /* registry type (the target's type for an alias) */
    const klay_layer_spec *spec;   /* entry of the layer table */
    int alias_of;                  /* plan index of the layer whose module this call-site uses; -1 if not an alias */
    int module;                    /* index into klay_plan.modules: the module instance this node calls */
    const klay_node *config;       /* resolved config subtree (of the target for aliases); may be NULL */
    size_t n_bindings;
    klay_binding *bindings;        /* positional (ascending) first, then keywords in YAML order */
    size_t n_output_aliases;
    klay_output_alias *output_aliases;
    int stage_depth;               /* max number of message-passing layers on a path from a model input
                                      up to and including this node */
    int edge_input;                /* aggregating node: model input index feeding its edge_index port
                                      (-1 if none or not a model input) */
    klay_mark mark;
} klay_plan_node;

typedef struct klay_model_output {
    const char *name;
    klay_source source;
    const char *tail; /* text after the first dot (KLay indexes the value with this string), or NULL */
    klay_mark mark;
} klay_model_output;

typedef struct klay_stage {
    int node;       /* plan index of the aggregating layer call */
    int edge_input; /* model input index of its edge_index, -1 if not a model input */
    int depth;      /* its stage_depth */
} klay_stage;

typedef struct klay_plan {
    size_t n_inputs;
    const char **inputs;          /* model input names in YAML order */
    klay_mark *input_marks;
    size_t n_nodes;
    klay_plan_node *nodes;        /* deterministic topological order, YAML order where free */
    size_t n_modules;
    int *modules;                 /* plan index of each distinct (non-alias) layer, YAML order */
    size_t n_outputs;
    klay_model_output *outputs;   /* model_outputs in YAML order */
    size_t n_stages;
    klay_stage *stages;           /* every aggregating call-site, in plan order */
    int depth;                    /* receptive-field depth: max stage_depth over nodes feeding an output */
    const klay_node *root;        /* the resolved document (model_params and any extra sections) */
} klay_plan;

/* A dangling layer (no path to any model output; KLay still runs it) is a warning by default. */
enum klay_plan_flags {
    KLAY_PLAN_ALLOW_DANGLING = 1, /* dangling layers are not reported at all */
    KLAY_PLAN_STRICT_DANGLING = 2 /* dangling layers are errors (klay validate --strict) */
};

/* Validate `doc` against `table` and build the plan. Returns NULL if any error was found.
 * The plan borrows from doc and table: keep both alive while it is used. */
klay_plan *klay_plan_build(const klay_doc *doc, const klay_layer_table *table, unsigned flags,
                           klay_diags *diags);
void klay_plan_free(klay_plan *plan);

/* Graphviz rendering (aliases drawn as call-sites of their target). Returns 0 on success. */
int klay_plan_write_dot(const klay_plan *plan, const char *path);

/* ---------- irreps blocks (docs/layers.md#irreps-blocks) ---------- */

/* Validates a KLay irreps block list (a sequence of maps {l, mul, p?}; l and mul are ints or
 * integral numeric strings, l >= 0, mul >= 0; p one of e/even/o/odd in any case, default e for
 * even l and o for odd l) and writes its e3nn text ("32x0e + 16x1o") into buf, truncated to
 * size (snprintf-style). Returns the full text length, or -1 after appending an error to diags. */
int klay_irreps_blocks_to_string(const klay_node *blocks, char *buf, size_t size, klay_diags *diags);

#ifdef __cplusplus
}
#endif
#endif
