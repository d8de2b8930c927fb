/* A layer's `config:` checked against its declaration in the layer table (docs/layers.md#registry):
 * required keys, unknown keys and the kind of each value. `klay validate` and the runtime's Config
 * both call this, so they give the same verdict, at the same place, for every key. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

const char *klay_config_type_text(klay_config_type type)
{
    switch (type) {
    case KLAY_CONFIG_INT: return "an integer";
    case KLAY_CONFIG_FLOAT: return "a number";
    case KLAY_CONFIG_BOOL: return "a boolean";
    case KLAY_CONFIG_STRING: return "a string";
    case KLAY_CONFIG_MAP: return "a mapping";
    case KLAY_CONFIG_LIST: return "a list";
    case KLAY_CONFIG_IRREPS_BLOCKS: return "a list of {l, mul, p} blocks";
    case KLAY_CONFIG_IRREPS: return "an irreps string or a list of {l, mul, p} blocks";
    case KLAY_CONFIG_ANY: break;
    }
    return "any value";
}

int klay_config_type_accepts(klay_config_type type, const klay_node *value)
{
    switch (type) {
    case KLAY_CONFIG_INT: return value->kind == KLAY_INT;
    case KLAY_CONFIG_FLOAT: return value->kind == KLAY_INT || value->kind == KLAY_FLOAT;
    case KLAY_CONFIG_BOOL: return value->kind == KLAY_BOOL;
    case KLAY_CONFIG_STRING: return value->kind == KLAY_STRING;
    case KLAY_CONFIG_MAP: return value->kind == KLAY_MAP;
    case KLAY_CONFIG_LIST:
    case KLAY_CONFIG_IRREPS_BLOCKS: return value->kind == KLAY_SEQ;
    case KLAY_CONFIG_IRREPS: return value->kind == KLAY_SEQ || value->kind == KLAY_STRING;
    case KLAY_CONFIG_ANY: break;
    }
    return 1;
}

const klay_config_arg *klay_config_arg_find(const klay_layer_spec *spec, const char *name)
{
    for (const klay_config_arg *a = spec->config_args; a->name; ++a)
        if (strcmp(a->name, name) == 0) return a;
    return NULL;
}

/* The key names of spec, or NULL when out of memory. */
static const char **arg_names(const klay_layer_spec *spec, size_t *n_args)
{
    *n_args = 0;
    while (spec->config_args[*n_args].name) ++*n_args;
    const char **names = malloc((*n_args + 1) * sizeof *names);
    for (size_t a = 0; names && a < *n_args; ++a) names[a] = spec->config_args[a].name;
    return names;
}

size_t klay_config_check_keys(const klay_layer_spec *spec, const klay_node *config, const char *layer_name,
                              klay_diags *diags)
{
    const size_t errors_before = klay_diags_errors(diags);
    if (!config || config->kind == KLAY_NULL) return 0;
    if (config->kind != KLAY_MAP) {
        klay_diag_add(diags, KLAY_ERROR, config->mark, "layer '%s': 'config' must be a mapping, not a %s", layer_name,
                      klay_node_kind_name(config->kind));
        return 1;
    }
    size_t n_args;
    const char **names = arg_names(spec, &n_args);
    if (!names) return 0;
    for (size_t k = 0; k < config->len; ++k) {
        const klay_node *key = config->keys[k], *value = config->items[k];
        const char *name = key->text ? key->text : ""; /* integer keys keep their source text */
        const klay_config_arg *arg = klay_config_arg_find(spec, name);
        if (!arg) {
            const char *best = klay_closest_name(name, names, n_args);
            klay_diag_add(diags, KLAY_ERROR, key->mark, "layer '%s' (%s): unknown config key '%s'%s%s%s", layer_name,
                          spec->name, name, best ? "; did you mean '" : "", best ? best : "", best ? "'?" : "");
        } else if (value->kind != KLAY_NULL && !klay_config_type_accepts(arg->type, value)) {
            klay_diag_add(diags, KLAY_ERROR, value->mark, "layer '%s', config '%s': expected %s, got %s", layer_name,
                          name, klay_config_type_text(arg->type), klay_node_kind_name(value->kind));
        }
    }
    free(names);
    return klay_diags_errors(diags) - errors_before;
}

size_t klay_config_check_required(const klay_layer_spec *spec, const klay_node *config, const char *layer_name,
                                  klay_mark layer_mark, klay_diags *diags)
{
    if (config && config->kind != KLAY_MAP) config = NULL;
    size_t missing = 0;
    for (const klay_config_arg *arg = spec->config_args; arg->name; ++arg) {
        const klay_node *value = config ? klay_map_get(config, arg->name) : NULL;
        if (arg->default_text || (value && value->kind != KLAY_NULL)) continue;
        klay_diag_add(diags, KLAY_ERROR, value ? value->mark : config ? config->mark : layer_mark,
                      "layer '%s' (%s): missing required config '%s'", layer_name, spec->name, arg->name);
        ++missing;
    }
    return missing;
}
