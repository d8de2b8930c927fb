/* Validation of a KLay model document (docs/design.md#yaml-contract) and construction of the build
 * plan.
 *
 * KLay's own checks (dag.py) are reproduced and tightened where KLay is lax
 * (docs/layers.md#klay-quirks): ports are checked by name, not by count; aliases are port-checked
 * against their target; names of inputs, layers and output aliases may not collide; `output:` keys
 * must fit the layer. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum name_kind { NAME_INPUT = 0, NAME_LAYER = 1, NAME_OUTPUT_ALIAS = 2 };
#define NAME_VALUE(kind, index) (((index) << 2) | (kind))
#define NAME_KIND(value) ((value) & 3)
#define NAME_INDEX(value) ((value) >> 2)

typedef struct layer_entry {
    const char *name;
    const klay_node *key, *body;
    const klay_node *type, *config, *inputs, *output, *alias;
    const klay_layer_spec *spec; /* the target's spec for aliases; NULL when unknown */
    int alias_of;                /* entry index of the alias target, -1 otherwise */
    klay_binding *bindings;      /* sources index entries here; remapped to plan order at the end */
    size_t n_bindings;
    klay_output_alias *output_aliases;
    size_t n_output_aliases;
    int plan_index;
    int reaches_output;
} layer_entry;

typedef struct builder {
    const klay_layer_table *table;
    klay_diags *diags;
    const klay_node *root, *inputs, *layers, *outputs;
    size_t n_inputs, n_entries;
    layer_entry *entries;
    klay_strmap names;
    const char **all_names; /* inputs, layers, output aliases (for suggestions) */
    size_t n_all_names;
    int *input_used;
} builder;

static const char *key_text(const klay_node *key) { return key->text ? key->text : ""; }

static int is_digit_string(const char *text) { return *text && strspn(text, "0123456789") == strlen(text); }

/* "; did you mean 'x'?" or "" */
static const char *suggestion_text(char *buf, size_t size, const char *word, const char *const *names, size_t n)
{
    const char *best = klay_closest_name(word, names, n);
    if (!best) return "";
    snprintf(buf, size, "; did you mean '%s'?", best);
    return buf;
}

static const char *describe_name(const builder *B, int value, char *buf, size_t size)
{
    const klay_node *at;
    const char *what;
    if (NAME_KIND(value) == NAME_INPUT) {
        what = "model input";
        at = B->inputs->keys[NAME_INDEX(value)];
    } else if (NAME_KIND(value) == NAME_LAYER) {
        what = "layer";
        at = B->entries[NAME_INDEX(value)].key;
    } else {
        what = "output alias";
        at = NULL;
    }
    if (at) snprintf(buf, size, "%s (line %d, column %d)", what, at->mark.line, at->mark.col);
    else snprintf(buf, size, "%s", what);
    return buf;
}

static void register_name(builder *B, const char *name, const klay_node *at, int value, const char *what)
{
    int put = klay_strmap_put(&B->names, name, strlen(name), value);
    if (put == 1) {
        char prior[128];
        describe_name(B, klay_strmap_get(&B->names, name, strlen(name)), prior, sizeof prior);
        klay_diag_add(B->diags, KLAY_ERROR, at->mark,
                      "%s name '%s' is already used by the %s (inputs, layers and output aliases share one "
                      "namespace)",
                      what, name, prior);
    } else if (put < 0) {
        klay_diag_add(B->diags, KLAY_ERROR, at->mark, "out of memory");
    } else {
        B->all_names[B->n_all_names++] = name;
    }
}

/* ---------- sections ---------- */

static const char *const top_level_sections[] = {"model_params", "model_inputs", "model_layers",
                                                  "model_outputs", "md", NULL};
static const char *const entry_fields[] = {"type", "config", "inputs", "output", "alias", NULL};

static const klay_node *section(builder *B, const char *name, int required)
{
    const klay_node *node = klay_map_get(B->root, name);
    if (!node) {
        if (required)
            klay_diag_add(B->diags, KLAY_ERROR, B->root->mark,
                          "missing top-level section '%s' (a model needs model_inputs, model_layers and "
                          "model_outputs; files with only model_layers are KLay layer libraries)",
                          name);
        return NULL;
    }
    if (node->kind == KLAY_NULL && strcmp(name, "model_layers") == 0) return NULL;
    if (node->kind != KLAY_MAP) {
        klay_diag_add(B->diags, KLAY_ERROR, node->mark, "'%s' must be a mapping, not a %s", name,
                      klay_node_kind_name(node->kind));
        return NULL;
    }
    return node;
}

static void check_top_level(builder *B)
{
    char hint[128];
    for (size_t i = 0; i < B->root->len; ++i) {
        const klay_node *key = B->root->keys[i];
        int known = 0;
        for (const char *const *s = top_level_sections; *s; ++s) known |= strcmp(key_text(key), *s) == 0;
        if (!known)
            klay_diag_add(B->diags, KLAY_WARNING, key->mark, "unknown top-level section '%s' is ignored%s",
                          key_text(key),
                          suggestion_text(hint, sizeof hint, key_text(key), top_level_sections, KLAY_UNCOUNTED));
    }
}

static const klay_layer_spec *find_spec(const klay_layer_table *table, const char *type)
{
    for (size_t t = 0; t < table->count; ++t)
        if (!strcmp(table->specs[t].name, type)) return &table->specs[t];
    return NULL;
}

static void collect_layer_entries(builder *B)
{
    char hint[128];
    for (size_t i = 0; i < B->n_entries; ++i) {
        layer_entry *e = &B->entries[i];
        e->key = B->layers->keys[i];
        e->body = B->layers->items[i];
        e->name = key_text(e->key);
        e->alias_of = -1;
        e->plan_index = -1;
        if (e->body->kind != KLAY_MAP) {
            klay_diag_add(B->diags, KLAY_ERROR, e->body->mark,
                          "layer '%s' must be a mapping with 'type' (or 'alias'), 'config', 'inputs', 'output'",
                          e->name);
            continue;
        }
        for (size_t k = 0; k < e->body->len; ++k) {
            const char *field = key_text(e->body->keys[k]);
            const klay_node *value = e->body->items[k];
            if (!strcmp(field, "type")) e->type = value;
            else if (!strcmp(field, "config")) e->config = value;
            else if (!strcmp(field, "inputs")) e->inputs = value;
            else if (!strcmp(field, "output")) e->output = value;
            else if (!strcmp(field, "alias")) e->alias = value;
            else
                klay_diag_add(B->diags, KLAY_WARNING, e->body->keys[k]->mark,
                              "layer '%s': unknown field '%s' is ignored%s", e->name, field,
                              suggestion_text(hint, sizeof hint, field, entry_fields, KLAY_UNCOUNTED));
        }
        struct {
            const klay_node **node;
            const char *field;
        } maps[] = {{&e->config, "config"}, {&e->inputs, "inputs"}, {&e->output, "output"}};
        for (size_t m = 0; m < sizeof maps / sizeof *maps; ++m) {
            const klay_node *value = *maps[m].node;
            if (value && value->kind == KLAY_NULL) *maps[m].node = NULL;
            else if (value && value->kind != KLAY_MAP) {
                klay_diag_add(B->diags, KLAY_ERROR, value->mark, "layer '%s': '%s' must be a mapping, not a %s",
                              e->name, maps[m].field, klay_node_kind_name(value->kind));
                *maps[m].node = NULL;
            }
        }
        if (e->alias) {
            if (e->alias->kind != KLAY_STRING) {
                klay_diag_add(B->diags, KLAY_ERROR, e->alias->mark,
                              "layer '%s': 'alias' must name another layer", e->name);
                e->alias = NULL;
            }
            continue;
        }
        if (!e->type) {
            klay_diag_add(B->diags, KLAY_ERROR, e->key->mark, "layer '%s' has neither 'type' nor 'alias'", e->name);
            continue;
        }
        if (e->type->kind != KLAY_STRING) {
            klay_diag_add(B->diags, KLAY_ERROR, e->type->mark, "layer '%s': 'type' must be a layer type name",
                          e->name);
            continue;
        }
        e->spec = find_spec(B->table, e->type->text);
        if (!e->spec) {
            const char **types = malloc(B->table->count * sizeof *types);
            if (types)
                for (size_t t = 0; t < B->table->count; ++t) types[t] = B->table->specs[t].name;
            klay_diag_add(B->diags, KLAY_ERROR, e->type->mark, "layer '%s': unknown layer type '%s'%s", e->name,
                          e->type->text,
                          types ? suggestion_text(hint, sizeof hint, e->type->text, types, B->table->count) : "");
            free(types);
        }
    }
}

static void register_names(builder *B)
{
    for (size_t i = 0; i < B->n_inputs; ++i)
        register_name(B, key_text(B->inputs->keys[i]), B->inputs->keys[i], NAME_VALUE(NAME_INPUT, (int)i),
                      "model input");
    for (size_t i = 0; i < B->n_entries; ++i)
        register_name(B, B->entries[i].name, B->entries[i].key, NAME_VALUE(NAME_LAYER, (int)i), "layer");
    for (size_t i = 0; i < B->n_entries; ++i) {
        const klay_node *output = B->entries[i].output;
        if (!output) continue;
        for (size_t k = 0; k < output->len; ++k) {
            const klay_node *alias = output->items[k];
            if (alias->kind != KLAY_STRING || !*alias->text || strchr(alias->text, '.')) {
                klay_diag_add(B->diags, KLAY_ERROR, alias->mark,
                              "layer '%s': output alias must be a plain name (no '.'), not '%s'", B->entries[i].name,
                              alias->text ? alias->text : klay_node_kind_name(alias->kind));
                continue;
            }
            register_name(B, alias->text, alias, NAME_VALUE(NAME_OUTPUT_ALIAS, (int)i), "output alias");
        }
    }
}

static int find_layer(const builder *B, const char *name)
{
    int value = klay_strmap_get(&B->names, name, strlen(name));
    return value >= 0 && NAME_KIND(value) == NAME_LAYER ? NAME_INDEX(value) : -1;
}

static void resolve_alias_targets(builder *B)
{
    char hint[128];
    const char **layer_names = malloc((B->n_entries + 1) * sizeof *layer_names);
    if (!layer_names) return;
    for (size_t i = 0; i < B->n_entries; ++i) layer_names[i] = B->entries[i].name;
    for (size_t i = 0; i < B->n_entries; ++i) {
        layer_entry *e = &B->entries[i];
        if (!e->alias) continue;
        int target = find_layer(B, e->alias->text);
        if (target < 0) {
            klay_diag_add(B->diags, KLAY_ERROR, e->alias->mark,
                          "layer '%s' is an alias of '%s', which is not a declared layer%s", e->name, e->alias->text,
                          suggestion_text(hint, sizeof hint, e->alias->text, layer_names, B->n_entries));
            continue;
        }
        const layer_entry *t = &B->entries[target];
        if (t->alias) {
            klay_diag_add(B->diags, KLAY_ERROR, e->alias->mark,
                          "layer '%s' is an alias of '%s', which is itself an alias (of '%s'); alias the layer "
                          "'%s' directly",
                          e->name, t->name, t->alias->text, t->alias->text);
            continue;
        }
        if ((size_t)target == i) continue; /* unreachable: an entry with alias: is an alias */
        e->alias_of = target;
        e->spec = t->spec;
        if (e->type && e->type->kind == KLAY_STRING && t->type && t->type->kind == KLAY_STRING &&
            strcmp(e->type->text, t->type->text) != 0)
            klay_diag_add(B->diags, KLAY_WARNING, e->type->mark,
                          "layer '%s': 'type: %s' is ignored; an alias calls its target '%s' (%s)", e->name,
                          e->type->text, t->name, t->type->text);
        if (e->config)
            klay_diag_add(B->diags, KLAY_WARNING, e->config->mark,
                          "layer '%s': 'config' of an alias is ignored; it shares the module of '%s'", e->name,
                          t->name);
    }
    free(layer_names);
}

static void check_config(builder *B, const layer_entry *e)
{
    if (!e->spec || e->alias) return;
    klay_config_check_required(e->spec, e->config, e->name, e->key->mark, B->diags);
    klay_config_check_keys(e->spec, e->config, e->name, B->diags);
}

/* ---------- input references ---------- */

/* The value named `name` (an entry of B->names): a model input, a layer's return value, or the
 * element an `output:` alias selects. */
static klay_source source_of_name(const builder *B, int value, const char *name, size_t len)
{
    int index = NAME_INDEX(value);
    klay_source source = {KLAY_SRC_INPUT, index, 0, 0, NULL};
    if (NAME_KIND(value) == NAME_LAYER) source.kind = KLAY_SRC_NODE;
    if (NAME_KIND(value) != NAME_OUTPUT_ALIAS) return source;
    const klay_node *output = B->entries[index].output;
    for (size_t k = 0; k < output->len; ++k) {
        const klay_node *alias = output->items[k], *key = output->keys[k];
        if (alias->kind != KLAY_STRING || strlen(alias->text) != len || strncmp(alias->text, name, len) != 0)
            continue;
        source.kind = KLAY_SRC_ITEM;
        source.key_is_int = key->kind == KLAY_INT || is_digit_string(key->text);
        source.key_int = key->kind == KLAY_INT ? key->integer : source.key_is_int ? strtoll(key->text, NULL, 10) : 0;
        source.key_str = source.key_is_int ? NULL : key->text;
        break;
    }
    return source;
}

/* Resolves a reference (docs/design.md#references) into `source`; returns 0 on success. */
static int resolve_reference(builder *B, const layer_entry *e, const char *port, const klay_node *ref,
                             klay_source *source)
{
    char hint[128];
    if (ref->kind != KLAY_STRING) {
        klay_diag_add(B->diags, KLAY_ERROR, ref->mark,
                      "layer '%s', input '%s': a reference must be a name (layer, output alias or model input), "
                      "not a %s",
                      e->name, port, klay_node_kind_name(ref->kind));
        return -1;
    }
    const char *text = ref->text;
    static const char prefix[] = "model_inputs.";
    if (strncmp(text, prefix, sizeof prefix - 1) == 0) {
        const char *name = text + sizeof prefix - 1;
        int value = klay_strmap_get(&B->names, name, strlen(name));
        if (value < 0 || NAME_KIND(value) != NAME_INPUT) {
            const char **inputs = malloc((B->n_inputs + 1) * sizeof *inputs);
            if (inputs)
                for (size_t i = 0; i < B->n_inputs; ++i) inputs[i] = key_text(B->inputs->keys[i]);
            klay_diag_add(B->diags, KLAY_ERROR, ref->mark,
                          "layer '%s', input '%s': unknown model input '%s'%s", e->name, port, name,
                          inputs ? suggestion_text(hint, sizeof hint, name, inputs, B->n_inputs) : "");
            free(inputs);
            return -1;
        }
        *source = (klay_source){KLAY_SRC_INPUT, NAME_INDEX(value), 0, 0, NULL};
        return 0;
    }
    const char *dot = strchr(text, '.');
    size_t head_len = dot ? (size_t)(dot - text) : strlen(text);
    int value = klay_strmap_get(&B->names, text, head_len);
    if (value < 0) {
        char *head = klay_strndup(text, head_len);
        klay_diag_add(B->diags, KLAY_ERROR, ref->mark,
                      "layer '%s', input '%s': unknown reference '%s' (not a layer, output alias or model input)%s",
                      e->name, port, head ? head : text,
                      head ? suggestion_text(hint, sizeof hint, head, B->all_names, B->n_all_names) : "");
        free(head);
        return -1;
    }
    if (dot)
        klay_diag_add(B->diags, KLAY_WARNING, ref->mark,
                      "layer '%s', input '%s': the suffix '%s' of '%s' is ignored: KLay passes the whole value of "
                      "'%.*s' (select tuple elements with an 'output:' alias)",
                      e->name, port, dot, text, (int)head_len, text);
    *source = source_of_name(B, value, text, head_len);
    return 0;
}

static int port_index(const klay_layer_spec *spec, const char *name)
{
    for (int p = 0; spec->inputs[p]; ++p)
        if (!strcmp(spec->inputs[p], name)) return p;
    return -1;
}

static int unrestricted(const char *const *ports) { return ports[0] && !strcmp(ports[0], "*") && !ports[1]; }

static size_t count_ports(const char *const *ports)
{
    size_t n = 0;
    while (ports[n]) ++n;
    return n;
}


static int compare_positions(const void *a, const void *b)
{
    const klay_binding *x = a, *y = b;
    return (x->position > y->position) - (x->position < y->position);
}

static void ports_list(const klay_layer_spec *spec, char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t p = 0; spec->inputs[p] && used < size; ++p)
        used += (size_t)snprintf(buf + used, size - used, "%s%s", p ? ", " : "", spec->inputs[p]);
}

static void bind_inputs(builder *B, layer_entry *e)
{
    const klay_node *inputs = e->inputs;
    size_t n = inputs ? inputs->len : 0;
    const char *type = e->spec ? e->spec->name : "unknown type";
    if (n && !(e->bindings = calloc(n, sizeof *e->bindings))) return;

    for (size_t k = 0; k < n; ++k) {
        const klay_node *key = inputs->keys[k];
        int positional = key->kind == KLAY_INT || is_digit_string(key->text);
        if (key->kind == KLAY_INT && key->integer < 0) {
            klay_diag_add(B->diags, KLAY_ERROR, key->mark, "layer '%s': input position %lld is negative", e->name,
                          (long long)key->integer);
            continue;
        }
        klay_binding *b = &e->bindings[e->n_bindings];
        b->position = -1;
        b->port = -1;
        b->reference = inputs->items[k]->kind == KLAY_STRING ? inputs->items[k]->text : NULL;
        b->mark = key->mark;
        if (positional) {
            b->position = key->kind == KLAY_INT ? key->integer : strtoll(key->text, NULL, 10);
        } else {
            b->keyword = key->text;
        }
        /* A failed reference keeps its binding (as an invalid input) so the port checks still run. */
        if (resolve_reference(B, e, key_text(key), inputs->items[k], &b->source) != 0)
            b->source = (klay_source){KLAY_SRC_INPUT, -1, 0, 0, NULL};
        else if (b->source.kind == KLAY_SRC_INPUT)
            B->input_used[b->source.index] = 1;
        ++e->n_bindings;
    }
    /* KLay passes positional arguments sorted by position, gaps collapsed; keywords follow in YAML
     * order. Positions are distinct (the loader rejects `0` next to `"0"`), so qsort's instability
     * does not matter. */
    klay_binding *sorted = e->n_bindings ? malloc(e->n_bindings * sizeof *sorted) : NULL;
    if (e->n_bindings && !sorted) return;
    size_t m = 0;
    for (size_t k = 0; k < e->n_bindings; ++k)
        if (e->bindings[k].position >= 0) sorted[m++] = e->bindings[k];
    size_t positional_count = m;
    for (size_t k = 0; k < e->n_bindings; ++k)
        if (e->bindings[k].position < 0) sorted[m++] = e->bindings[k];
    if (positional_count > 1) qsort(sorted, positional_count, sizeof *sorted, compare_positions);
    if (e->n_bindings) memcpy(e->bindings, sorted, e->n_bindings * sizeof *sorted);
    free(sorted);

    const klay_layer_spec *spec = e->spec;
    if (!spec || unrestricted(spec->inputs)) return;

    char hint[128], ports[256];
    size_t n_ports = count_ports(spec->inputs);
    ports_list(spec, ports, sizeof ports);
    /* Registered layers have at most a handful of ports; more could not be tracked here. */
    unsigned char bound[64] = {0}, suggested[64] = {0};
    if (n_ports > sizeof bound) return;
    const char *role = e->alias ? "alias" : "layer";
    for (size_t k = 0; k < e->n_bindings; ++k) {
        klay_binding *b = &e->bindings[k];
        if (b->position >= 0) {
            if (k >= n_ports) {
                klay_diag_add(B->diags, KLAY_ERROR, b->mark,
                              "%s '%s' (%s) takes %zu input ports (%s); positional input %lld is one too many", role,
                              e->name, type, n_ports, ports, (long long)b->position);
                continue;
            }
            b->port = (int)k;
        } else {
            b->port = port_index(spec, b->keyword);
            if (b->port < 0) {
                const char *best = klay_closest_name(b->keyword, spec->inputs, KLAY_UNCOUNTED);
                if (best) suggested[port_index(spec, best)] = 1;
                klay_diag_add(B->diags, KLAY_ERROR, b->mark, "%s '%s' (%s) has no input port '%s'%s (ports: %s)",
                              role, e->name, type, b->keyword,
                              suggestion_text(hint, sizeof hint, b->keyword, spec->inputs, KLAY_UNCOUNTED), ports);
                continue;
            }
        }
        if (bound[b->port]) {
            klay_diag_add(B->diags, KLAY_ERROR, b->mark, "%s '%s' (%s): input port '%s' is connected twice", role,
                          e->name, type, spec->inputs[b->port]);
            continue;
        }
        bound[b->port] = 1;
    }
    klay_strbuf missing = {0};
    size_t n_missing = 0;
    for (size_t p = 0; p < n_ports && p < sizeof bound; ++p) {
        if (bound[p] || suggested[p]) continue;
        klay_sb_printf(&missing, "%s'%s'", n_missing++ ? ", " : "", spec->inputs[p]);
    }
    char *list = klay_sb_take(&missing);
    if (n_missing && list)
        klay_diag_add(B->diags, KLAY_ERROR, (inputs ? inputs : e->key)->mark,
                      "%s '%s' (%s) does not connect input port%s %s (every registered port must be wired)", role,
                      e->name, type, n_missing > 1 ? "s" : "", list);
    free(list);
}

/* Output maps (docs/design.md#layer-entries, tightened): a multi-output layer returns a tuple, so its
 * keys must be positions 0..n-1 and, as in KLay, exactly n of them; a single-output layer returns
 * one tensor, which only integer keys can index (row selection, as KLay does). */
static void bind_outputs(builder *B, layer_entry *e)
{
    const klay_node *output = e->output;
    if (!output || !output->len) return;
    if (!(e->output_aliases = calloc(output->len, sizeof *e->output_aliases))) return;
    const klay_layer_spec *spec = e->spec;
    size_t n_outputs = spec ? count_ports(spec->outputs) : 0;
    int free_form = !spec || unrestricted(spec->outputs);
    const char *type = spec ? spec->name : "unknown type";
    for (size_t k = 0; k < output->len; ++k) {
        const klay_node *key = output->keys[k], *alias = output->items[k];
        if (alias->kind != KLAY_STRING) continue;
        int is_int = key->kind == KLAY_INT || is_digit_string(key->text);
        int64_t position = key->kind == KLAY_INT ? key->integer : is_int ? strtoll(key->text, NULL, 10) : -1;
        klay_output_alias *oa = &e->output_aliases[e->n_output_aliases++];
        *oa = (klay_output_alias){is_int, position, is_int ? NULL : key->text, alias->text, alias->mark};
        if (free_form) continue;
        if (!is_int) {
            int named = -1;
            for (size_t o = 0; o < n_outputs; ++o)
                if (!strcmp(spec->outputs[o], key->text)) named = (int)o;
            if (named >= 0)
                klay_diag_add(B->diags, KLAY_ERROR, key->mark,
                              "layer '%s' (%s): output key '%s' would index the returned %s with a string; use its "
                              "position %d",
                              e->name, type, key->text, n_outputs > 1 ? "tuple" : "tensor", named);
            else
                klay_diag_add(B->diags, KLAY_ERROR, key->mark,
                              "layer '%s' (%s): output key '%s' is not valid; keys are positions of the returned "
                              "%s",
                              e->name, type, key->text, n_outputs > 1 ? "tuple" : "tensor");
        } else if (n_outputs > 1 && (position < 0 || (size_t)position >= n_outputs)) {
            klay_diag_add(B->diags, KLAY_ERROR, key->mark,
                          "layer '%s' (%s) returns %zu outputs; output position %lld is out of range", e->name, type,
                          n_outputs, (long long)position);
        } else if (n_outputs == 1) {
            klay_diag_add(B->diags, KLAY_WARNING, key->mark,
                          "layer '%s' (%s) returns a single tensor '%s'; output key %lld selects row %lld of it "
                          "(KLay semantics)",
                          e->name, type, spec->outputs[0], (long long)position, (long long)position);
        }
    }
    if (!free_form && n_outputs > 1 && output->len != n_outputs)
        klay_diag_add(B->diags, KLAY_ERROR, output->mark,
                      "layer '%s' (%s) returns %zu outputs (%s%s%s%s%s) and its output map must name all of them, "
                      "found %zu",
                      e->name, type, n_outputs, spec->outputs[0], n_outputs > 1 ? ", " : "",
                      n_outputs > 1 ? spec->outputs[1] : "", n_outputs > 2 ? ", " : "",
                      n_outputs > 2 ? spec->outputs[2] : "", output->len);
}

/* ---------- model outputs ---------- */

static void bind_model_outputs(builder *B, klay_plan *plan)
{
    char hint[128];
    const klay_node *outputs = B->outputs;
    if (!outputs->len) {
        klay_diag_add(B->diags, KLAY_ERROR, outputs->mark, "model_outputs is empty");
        return;
    }
    if (!(plan->outputs = calloc(outputs->len, sizeof *plan->outputs))) return;
    for (size_t k = 0; k < outputs->len; ++k) {
        const klay_node *key = outputs->keys[k], *ref = outputs->items[k];
        if (ref->kind != KLAY_STRING) {
            klay_diag_add(B->diags, KLAY_ERROR, ref->mark, "model output '%s' must name a layer, output alias or "
                          "input, not a %s", key_text(key), klay_node_kind_name(ref->kind));
            continue;
        }
        const char *dot = strchr(ref->text, '.');
        size_t head_len = dot ? (size_t)(dot - ref->text) : strlen(ref->text);
        int value = klay_strmap_get(&B->names, ref->text, head_len);
        if (value < 0) {
            char *head = klay_strndup(ref->text, head_len);
            int via_inputs = head && !strcmp(head, "model_inputs");
            klay_diag_add(B->diags, KLAY_ERROR, ref->mark, "model output '%s': unknown reference '%s'%s", key_text(key),
                          head ? head : ref->text,
                          via_inputs ? " (model_outputs name inputs without the 'model_inputs.' prefix, as KLay does)"
                          : head    ? suggestion_text(hint, sizeof hint, head, B->all_names, B->n_all_names)
                                    : "");
            free(head);
            continue;
        }
        klay_model_output *out = &plan->outputs[plan->n_outputs++];
        out->name = key_text(key);
        out->mark = ref->mark;
        out->tail = dot ? dot + 1 : NULL;
        out->source = source_of_name(B, value, ref->text, head_len);
        if (out->source.kind == KLAY_SRC_INPUT) B->input_used[out->source.index] = 1;
        if (dot)
            klay_diag_add(B->diags, KLAY_WARNING, ref->mark,
                          "model output '%s': '%s' indexes the value of '%.*s' with the string key '%s' (KLay "
                          "semantics; fails on tensors and tuples: use an 'output:' alias)",
                          out->name, ref->text, (int)head_len, ref->text, dot + 1);
    }
}

/* ---------- graph order ---------- */

/* Producer entry of a binding source, or -1 for model inputs. */
static int producer(const klay_source *s) { return s->kind == KLAY_SRC_INPUT ? -1 : s->index; }

typedef struct heap {
    int *items;
    size_t len;
} heap;

static void heap_push(heap *h, int v)
{
    size_t i = h->len++;
    h->items[i] = v;
    while (i && h->items[(i - 1) / 2] > h->items[i]) {
        int t = h->items[i];
        h->items[i] = h->items[(i - 1) / 2];
        h->items[(i - 1) / 2] = t;
        i = (i - 1) / 2;
    }
}

static int heap_pop(heap *h)
{
    int top = h->items[0];
    h->items[0] = h->items[--h->len];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->len && h->items[l] < h->items[m]) m = l;
        if (r < h->len && h->items[r] < h->items[m]) m = r;
        if (m == i) break;
        int t = h->items[i];
        h->items[i] = h->items[m];
        h->items[m] = t;
        i = m;
    }
    return top;
}

static void report_cycle(builder *B, const int *indegree)
{
    size_t n = B->n_entries;
    int *position = malloc(n * sizeof *position), *path = malloc((n + 1) * sizeof *path);
    if (!position || !path) goto done;
    for (size_t i = 0; i < n; ++i) position[i] = -1;
    int current = -1;
    for (size_t i = 0; i < n && current < 0; ++i)
        if (indegree[i] > 0) current = (int)i;
    size_t len = 0;
    /* Walk back along unfinished producers until a layer repeats: that stretch is a cycle. */
    while (current >= 0 && position[current] < 0) {
        position[current] = (int)len;
        path[len++] = current;
        int next = -1;
        const layer_entry *e = &B->entries[current];
        for (size_t k = 0; k < e->n_bindings && next < 0; ++k) {
            int p = producer(&e->bindings[k].source);
            if (p >= 0 && indegree[p] > 0) next = p;
        }
        current = next;
    }
    if (current < 0) goto done;
    /* path[start..len) runs consumer -> producer; print it in data-flow order from path[start]. */
    size_t start = (size_t)position[current];
    klay_strbuf sb = {0};
    klay_sb_puts(&sb, B->entries[path[start]].name);
    for (size_t i = len; i-- > start;) klay_sb_printf(&sb, " -> %s", B->entries[path[i]].name);
    char *text = klay_sb_take(&sb);
    klay_diag_add(B->diags, KLAY_ERROR, B->entries[path[start]].key->mark, "cycle in the layer graph: %s",
                  text ? text : "?");
    free(text);
done:
    free(position);
    free(path);
}

/* Kahn's algorithm, always taking the ready layer that comes first in the YAML. */
static int *topological_order(builder *B)
{
    size_t n = B->n_entries, n_edges = 0;
    for (size_t i = 0; i < n; ++i)
        for (size_t k = 0; k < B->entries[i].n_bindings; ++k) n_edges += producer(&B->entries[i].bindings[k].source) >= 0;
    int *indegree = calloc(n + 1, sizeof *indegree), *first = calloc(n + 2, sizeof *first);
    int *consumers = malloc((n_edges + 1) * sizeof *consumers), *order = malloc((n + 1) * sizeof *order);
    heap ready = {malloc((n + 1) * sizeof(int)), 0};
    int ok = indegree && first && consumers && order && ready.items;
    if (ok) {
        /* Consumers of each producer, in CSR form. */
        for (size_t i = 0; i < n; ++i)
            for (size_t k = 0; k < B->entries[i].n_bindings; ++k) {
                int p = producer(&B->entries[i].bindings[k].source);
                if (p >= 0) ++first[p + 1], ++indegree[i];
            }
        for (size_t i = 0; i < n; ++i) first[i + 1] += first[i];
        int *fill = calloc(n + 1, sizeof *fill);
        ok = fill != NULL;
        for (size_t i = 0; ok && i < n; ++i)
            for (size_t k = 0; k < B->entries[i].n_bindings; ++k) {
                int p = producer(&B->entries[i].bindings[k].source);
                if (p >= 0) consumers[first[p] + fill[p]++] = (int)i;
            }
        free(fill);
    }
    size_t done = 0;
    if (ok) {
        for (size_t i = 0; i < n; ++i)
            if (!indegree[i]) heap_push(&ready, (int)i);
        while (ready.len) {
            int u = heap_pop(&ready);
            order[done++] = u;
            for (int c = first[u]; c < first[u + 1]; ++c)
                if (--indegree[consumers[c]] == 0) heap_push(&ready, consumers[c]);
        }
        if (done < n) report_cycle(B, indegree);
    }
    free(indegree);
    free(first);
    free(consumers);
    free(ready.items);
    if (!ok || done < n) {
        free(order);
        return NULL;
    }
    return order;
}

static void mark_reaching_outputs(builder *B, const klay_plan *plan)
{
    size_t n = B->n_entries;
    int *stack = malloc((n + 1) * sizeof *stack);
    if (!stack) return;
    size_t top = 0;
    for (size_t o = 0; o < plan->n_outputs; ++o) {
        int p = producer(&plan->outputs[o].source);
        if (p >= 0 && !B->entries[p].reaches_output) B->entries[p].reaches_output = 1, stack[top++] = p;
    }
    while (top) {
        const layer_entry *e = &B->entries[stack[--top]];
        for (size_t k = 0; k < e->n_bindings; ++k) {
            int p = producer(&e->bindings[k].source);
            if (p >= 0 && !B->entries[p].reaches_output) B->entries[p].reaches_output = 1, stack[top++] = p;
        }
    }
    free(stack);
}

/* ---------- plan assembly ---------- */

static int fill_plan(builder *B, klay_plan *plan, const int *order)
{
    size_t n = B->n_entries;
    for (size_t i = 0; i < n; ++i) B->entries[order[i]].plan_index = (int)i;
    plan->n_nodes = n;
    plan->nodes = calloc(n + 1, sizeof *plan->nodes);
    plan->modules = calloc(n + 1, sizeof *plan->modules);
    plan->stages = calloc(n + 1, sizeof *plan->stages);
    int *module_of_entry = calloc(n + 1, sizeof *module_of_entry);
    if (!plan->nodes || !plan->modules || !plan->stages || !module_of_entry) {
        free(module_of_entry);
        return -1;
    }
    for (size_t i = 0; i < n; ++i)
        if (!B->entries[i].alias) {
            module_of_entry[i] = (int)plan->n_modules;
            plan->modules[plan->n_modules++] = B->entries[i].plan_index;
        }
    for (size_t i = 0; i < n; ++i) {
        layer_entry *e = &B->entries[order[i]];
        klay_plan_node *node = &plan->nodes[i];
        const layer_entry *module_entry = e->alias_of >= 0 ? &B->entries[e->alias_of] : e;
        node->name = e->name;
        node->spec = e->spec;
        node->type = e->spec->name;
        node->alias_of = e->alias_of >= 0 ? module_entry->plan_index : -1;
        node->module = module_of_entry[module_entry - B->entries];
        node->config = module_entry->config;
        node->mark = e->key->mark;
        node->bindings = e->bindings;
        node->n_bindings = e->n_bindings;
        node->output_aliases = e->output_aliases;
        node->n_output_aliases = e->n_output_aliases;
        e->bindings = NULL;
        e->output_aliases = NULL;
        node->edge_input = -1;
        int depth = 0;
        for (size_t k = 0; k < node->n_bindings; ++k) {
            klay_binding *b = &node->bindings[k];
            if (b->source.kind != KLAY_SRC_INPUT) {
                b->source.index = B->entries[b->source.index].plan_index;
                if (plan->nodes[b->source.index].stage_depth > depth) depth = plan->nodes[b->source.index].stage_depth;
            }
        }
        if (e->spec->aggregation != KLAY_AGG_NONE) {
            ++depth;
            int edge_port = e->spec->edge_index_port ? port_index(e->spec, e->spec->edge_index_port) : -1;
            for (size_t k = 0; k < node->n_bindings; ++k)
                if (node->bindings[k].port == edge_port && node->bindings[k].source.kind == KLAY_SRC_INPUT)
                    node->edge_input = node->bindings[k].source.index;
            plan->stages[plan->n_stages++] = (klay_stage){(int)i, node->edge_input, depth};
        }
        node->stage_depth = depth;
    }
    free(module_of_entry);
    for (size_t o = 0; o < plan->n_outputs; ++o) {
        klay_source *s = &plan->outputs[o].source;
        int depth = 0;
        if (s->kind != KLAY_SRC_INPUT) {
            s->index = B->entries[s->index].plan_index;
            depth = plan->nodes[s->index].stage_depth;
        }
        if (depth > plan->depth) plan->depth = depth;
    }
    return 0;
}

static void report_unused(builder *B, unsigned flags)
{
    for (size_t i = 0; i < B->n_inputs; ++i)
        if (!B->input_used[i])
            klay_diag_add(B->diags, KLAY_WARNING, B->inputs->keys[i]->mark,
                          "model input '%s' is not used by any layer or output", key_text(B->inputs->keys[i]));
    if (flags & KLAY_PLAN_ALLOW_DANGLING) return;
    for (size_t i = 0; i < B->n_entries; ++i)
        if (!B->entries[i].reaches_output)
            klay_diag_add(B->diags, (flags & KLAY_PLAN_STRICT_DANGLING) ? KLAY_ERROR : KLAY_WARNING,
                          B->entries[i].key->mark,
                          "layer '%s' is dangling: no model output depends on it (KLay still runs it)",
                          B->entries[i].name);
}

static void free_builder(builder *B)
{
    for (size_t i = 0; i < B->n_entries; ++i) {
        free(B->entries[i].bindings);
        free(B->entries[i].output_aliases);
    }
    free(B->entries);
    free(B->all_names);
    free(B->input_used);
    klay_strmap_free(&B->names);
}

klay_plan *klay_plan_build(const klay_doc *doc, const klay_layer_table *table, unsigned flags, klay_diags *diags)
{
    size_t errors_before = klay_diags_errors(diags);
    const klay_node *root = klay_doc_root(doc);
    if (!root) return NULL;
    if (root->kind != KLAY_MAP) {
        klay_diag_add(diags, KLAY_ERROR, root->mark, "the model file must be a mapping of sections, not a %s",
                      klay_node_kind_name(root->kind));
        return NULL;
    }
    builder B = {0};
    B.table = table;
    B.diags = diags;
    B.root = root;
    check_top_level(&B);
    /* A model without layers is valid, but a file that is not a model at all (an empty one, a
       layer library) gets every missing section named. */
    const int layers_required = !klay_map_get(root, "model_inputs") || !klay_map_get(root, "model_outputs");
    B.inputs = section(&B, "model_inputs", 1);
    B.layers = section(&B, "model_layers", layers_required);
    B.outputs = section(&B, "model_outputs", 1);
    const klay_node *params = klay_map_get(root, "model_params");
    if (params && params->kind != KLAY_MAP && params->kind != KLAY_NULL)
        klay_diag_add(diags, KLAY_ERROR, params->mark, "'model_params' must be a mapping, not a %s",
                      klay_node_kind_name(params->kind));
    if (!B.inputs || !B.outputs) return NULL;

    klay_plan *plan = calloc(1, sizeof *plan);
    B.n_inputs = B.inputs->len;
    B.n_entries = B.layers ? B.layers->len : 0;
    B.entries = calloc(B.n_entries + 1, sizeof *B.entries);
    B.input_used = calloc(B.n_inputs + 1, sizeof *B.input_used);
    size_t n_output_aliases = 0;
    for (size_t i = 0; i < B.n_entries; ++i) {
        const klay_node *body = B.layers->items[i], *output = klay_map_get(body, "output");
        if (output && output->kind == KLAY_MAP) n_output_aliases += output->len;
    }
    B.all_names = malloc((B.n_inputs + B.n_entries + n_output_aliases + 1) * sizeof *B.all_names);
    if (!plan || !B.entries || !B.input_used || !B.all_names) {
        klay_diag_add(diags, KLAY_ERROR, root->mark, "out of memory");
        free(plan);
        free_builder(&B);
        return NULL;
    }
    plan->root = root;

    collect_layer_entries(&B);
    register_names(&B);
    resolve_alias_targets(&B);
    for (size_t i = 0; i < B.n_entries; ++i) {
        check_config(&B, &B.entries[i]);
        bind_inputs(&B, &B.entries[i]);
        bind_outputs(&B, &B.entries[i]);
    }
    bind_model_outputs(&B, plan);

    int *order = NULL;
    if (klay_diags_errors(diags) == errors_before) order = topological_order(&B);
    if (order) {
        mark_reaching_outputs(&B, plan);
        report_unused(&B, flags);
    }
    if (order && klay_diags_errors(diags) == errors_before) {
        plan->n_inputs = B.n_inputs;
        plan->inputs = calloc(B.n_inputs + 1, sizeof *plan->inputs);
        plan->input_marks = calloc(B.n_inputs + 1, sizeof *plan->input_marks);
        if (plan->inputs && plan->input_marks) {
            for (size_t i = 0; i < B.n_inputs; ++i) {
                plan->inputs[i] = key_text(B.inputs->keys[i]);
                plan->input_marks[i] = B.inputs->keys[i]->mark;
            }
        }
        if (!plan->inputs || !plan->input_marks || fill_plan(&B, plan, order) != 0)
            klay_diag_add(diags, KLAY_ERROR, root->mark, "out of memory");
    }
    free(order);
    free_builder(&B);
    if (klay_diags_errors(diags) != errors_before) {
        klay_plan_free(plan);
        return NULL;
    }
    return plan;
}

void klay_plan_free(klay_plan *plan)
{
    if (!plan) return;
    for (size_t i = 0; plan->nodes && i < plan->n_nodes; ++i) {
        free(plan->nodes[i].bindings);
        free(plan->nodes[i].output_aliases);
    }
    free(plan->nodes);
    free((void *)plan->inputs);
    free(plan->input_marks);
    free(plan->modules);
    free(plan->outputs);
    free(plan->stages);
    free(plan);
}
