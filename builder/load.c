/* YAML -> typed tree, reproducing OmegaConf.load (PyYAML SafeLoader, YAML 1.1 scalars, OmegaConf's
 * wider float pattern, duplicate keys rejected), from libyaml's event stream so that every node
 * keeps its line:column and whether it was quoted. */
#include "internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#define TAG_PREFIX "tag:yaml.org,2002:"

/* ---------- scalar typing (PyYAML's implicit resolvers and constructors) ---------- */

static int is_digit(char c) { return c >= '0' && c <= '9'; }
static int is_in(char c, const char *set) { return c && strchr(set, c) != NULL; }

/* Advances over characters of `set`; returns how many. */
static size_t span(const char **p, const char *set)
{
    size_t n = 0;
    while (is_in(**p, set)) ++*p, ++n;
    return n;
}

static void skip_sign(const char **p)
{
    if (**p == '+' || **p == '-') ++*p;
}

/* One or more ":[0-5]?[0-9]" groups (YAML 1.1 sexagesimal). */
static int span_base60_groups(const char **p)
{
    int groups = 0;
    while (**p == ':') {
        const char *q = *p + 1;
        if (is_in(q[0], "012345") && is_digit(q[1])) q += 2;
        else if (is_digit(q[0])) q += 1;
        else break;
        *p = q;
        ++groups;
    }
    return groups;
}

/* [-+]?0b[0-1_]+ | [-+]?0[0-7_]+ | [-+]?(0|[1-9][0-9_]*) | [-+]?0x[0-9a-fA-F_]+
 * | [-+]?[1-9][0-9_]*(:[0-5]?[0-9])+   -- note: no 0o prefix in YAML 1.1 */
static int matches_int(const char *s)
{
    const char *p = s;
    skip_sign(&p);
    if (p[0] == '0' && p[1] == 'b') return (p += 2, span(&p, "01_") > 0 && !*p);
    if (p[0] == '0' && p[1] == 'x') return (p += 2, span(&p, "0123456789abcdefABCDEF_") > 0 && !*p);
    if (p[0] == '0') return (++p, !*p || (span(&p, "01234567_") > 0 && !*p));
    if (!is_in(p[0], "123456789")) return 0;
    span(&p, "0123456789_");
    if (!*p) return 1;
    return span_base60_groups(&p) > 0 && !*p;
}

/* OmegaConf's float pattern (PyYAML's plus exponent without a dot / without an exponent sign):
 *   [-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+]?[0-9]+)?  | [-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
 * | \.[0-9_]+([eE][-+][0-9]+)?  | [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
 * | [-+]?\.(inf|Inf|INF)  | \.(nan|NaN|NAN) */
static int span_exponent(const char **p, int sign_required)
{
    const char *q = *p;
    if (*q != 'e' && *q != 'E') return 0;
    ++q;
    if (*q == '+' || *q == '-') ++q;
    else if (sign_required) return 0;
    if (span(&q, "0123456789") == 0) return 0;
    *p = q;
    return 1;
}

static int matches_float(const char *s)
{
    if (!strcmp(s, ".nan") || !strcmp(s, ".NaN") || !strcmp(s, ".NAN")) return 1;
    const char *p = s;
    if (p[0] == '.' && (is_digit(p[1]) || p[1] == '_')) {
        ++p;
        span(&p, "0123456789_");
        span_exponent(&p, 1);
        return !*p;
    }
    skip_sign(&p);
    if (!strcmp(p, ".inf") || !strcmp(p, ".Inf") || !strcmp(p, ".INF")) return 1;
    if (!is_digit(*p)) return 0;
    span(&p, "0123456789_");
    if (*p == ':') {
        if (!span_base60_groups(&p) || *p != '.') return 0;
        ++p;
        span(&p, "0123456789_");
        return !*p;
    }
    if (*p == '.') {
        ++p;
        span(&p, "0123456789_");
        span_exponent(&p, 0);
        return !*p;
    }
    return span_exponent(&p, 0) && !*p;
}

static int matches_bool(const char *s, int *value)
{
    static const char *const truthy[] = {"yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"};
    static const char *const falsy[] = {"no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"};
    for (size_t i = 0; i < sizeof truthy / sizeof *truthy; ++i) {
        if (!strcmp(s, truthy[i])) return (*value = 1);
        if (!strcmp(s, falsy[i])) return (*value = 0, 1);
    }
    return 0;
}

static int matches_null(const char *s)
{
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
}

/* `s` without underscores, as PyYAML's constructors see it; caller frees. */
static char *without_underscores(const char *s)
{
    char *out = malloc(strlen(s) + 1), *q = out;
    if (!out) return NULL;
    for (; *s; ++s)
        if (*s != '_') *q++ = *s;
    *q = '\0';
    return out;
}

/* Parses digits of `base` into *acc with overflow detection; 0 on success. */
static int accumulate_digits(const char *p, int base, uint64_t *acc)
{
    if (!*p) return -1;
    for (; *p; ++p) {
        int d;
        if (is_digit(*p)) d = *p - '0';
        else if (*p >= 'a' && *p <= 'f') d = *p - 'a' + 10;
        else if (*p >= 'A' && *p <= 'F') d = *p - 'A' + 10;
        else return -1;
        if (d >= base) return -1;
        if (*acc > (UINT64_MAX - (uint64_t)d) / (uint64_t)base) return 1;
        *acc = *acc * (uint64_t)base + (uint64_t)d;
    }
    return 0;
}

/* PyYAML construct_yaml_int. Returns 0 on success, -1 when the text is not an integer, 1 when it
 * does not fit in int64. */
static int construct_int(const char *text, int64_t *out)
{
    char *clean = without_underscores(text);
    if (!clean) return -1;
    const char *p = clean;
    int negative = *p == '-';
    skip_sign(&p);
    uint64_t magnitude = 0;
    int rc;
    if (p[0] == '0' && p[1] == 'b') rc = accumulate_digits(p + 2, 2, &magnitude);
    else if (p[0] == '0' && p[1] == 'x') rc = accumulate_digits(p + 2, 16, &magnitude);
    else if (p[0] == '0') rc = accumulate_digits(p, 8, &magnitude);
    else if (strchr(p, ':')) {
        rc = 0;
        for (const char *part = p; rc == 0;) {
            const char *colon = strchr(part, ':');
            char digits[32];
            size_t n = colon ? (size_t)(colon - part) : strlen(part);
            if (n == 0 || n >= sizeof digits) {
                rc = n ? 1 : -1;
                break;
            }
            memcpy(digits, part, n);
            digits[n] = '\0';
            uint64_t value = 0;
            rc = accumulate_digits(digits, 10, &value);
            if (rc == 0 && (magnitude > (UINT64_MAX - value) / 60)) rc = 1;
            if (rc == 0) magnitude = magnitude * 60 + value;
            if (!colon) break;
            part = colon + 1;
        }
    } else rc = accumulate_digits(p, 10, &magnitude);
    free(clean);
    if (rc != 0) return rc;
    if (magnitude > (uint64_t)INT64_MAX + (uint64_t)negative) return 1;
    *out = negative ? (int64_t)(0 - magnitude) : (int64_t)magnitude;
    return 0;
}

/* PyYAML construct_yaml_float. Returns 0 on success. */
static int construct_float(const char *text, double *out)
{
    char *clean = without_underscores(text);
    if (!clean) return -1;
    for (char *c = clean; *c; ++c)
        if (*c >= 'A' && *c <= 'Z') *c = (char)(*c - 'A' + 'a');
    const char *p = clean;
    double sign = *p == '-' ? -1.0 : 1.0;
    skip_sign(&p);
    int rc = 0;
    if (!strcmp(p, ".inf")) *out = sign * INFINITY;
    else if (!strcmp(p, ".nan")) *out = NAN;
    else if (!*p || strspn(p, "0123456789.e+-:") != strlen(p)) rc = -1;
    else if (strchr(p, ':')) {
        /* Sexagesimal: the last part is the units, each part to its left 60 times more. */
        double value = 0.0;
        for (const char *part = p;;) {
            char *end;
            double d = strtod(part, &end);
            if (end == part || (*end && *end != ':')) {
                rc = -1;
                break;
            }
            value = value * 60.0 + d;
            if (!*end) break;
            part = end + 1;
        }
        *out = sign * value;
    } else {
        char *end;
        errno = 0;
        double value = strtod(p, &end);
        if (end == p || *end) rc = -1;
        *out = sign * value; /* overflow gives inf, as Python's float() */
    }
    free(clean);
    return rc;
}

/* Types a scalar event's value into `node` as OmegaConf's loader would. Returns 0 on success. */
static int type_scalar(klay_node *node, const yaml_event_t *ev, klay_diags *diags)
{
    const char *text = (const char *)ev->data.scalar.value;
    const char *tag = (const char *)ev->data.scalar.tag;
    int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    if (strlen(text) != ev->data.scalar.length) {
        klay_diag_add(diags, KLAY_ERROR, node->mark, "NUL character inside a scalar is not supported");
        return -1;
    }
    if (!(node->text = klay_strndup(text, ev->data.scalar.length))) return -1;

    const char *kind;
    if (tag && strcmp(tag, "!") != 0) {
        if (strncmp(tag, TAG_PREFIX, strlen(TAG_PREFIX)) != 0) {
            klay_diag_add(diags, KLAY_ERROR, node->mark, "unsupported YAML tag '%s'", tag);
            return -1;
        }
        kind = tag + strlen(TAG_PREFIX);
    } else if (!plain || tag) {
        kind = "str"; /* quoted scalars and the non-specific tag "!" are always strings */
    } else {
        int b;
        if (matches_bool(text, &b)) kind = "bool";
        else if (matches_float(text)) kind = "float";
        else if (matches_int(text)) kind = "int";
        else if (matches_null(text)) kind = "null";
        else kind = "str";
    }

    if (!strcmp(kind, "str")) {
        node->kind = KLAY_STRING;
    } else if (!strcmp(kind, "null")) {
        node->kind = KLAY_NULL;
    } else if (!strcmp(kind, "bool")) {
        /* The explicit !!bool constructor is case-insensitive, the implicit resolver is not. */
        char lower[8] = {0};
        size_t n = strlen(text);
        for (size_t i = 0; i < n && i < sizeof lower - 1; ++i)
            lower[i] = (char)((text[i] >= 'A' && text[i] <= 'Z') ? text[i] - 'A' + 'a' : text[i]);
        if (n >= sizeof lower || !matches_bool(lower, &node->boolean)) {
            klay_diag_add(diags, KLAY_ERROR, node->mark, "'%s' is not a boolean", text);
            return -1;
        }
        node->kind = KLAY_BOOL;
    } else if (!strcmp(kind, "int")) {
        int rc = construct_int(text, &node->integer);
        if (rc != 0) {
            klay_diag_add(diags, KLAY_ERROR, node->mark,
                          rc > 0 ? "integer '%s' does not fit in 64 bits" : "'%s' is not an integer", text);
            return -1;
        }
        node->kind = KLAY_INT;
    } else if (!strcmp(kind, "float")) {
        if (construct_float(text, &node->real) != 0) {
            klay_diag_add(diags, KLAY_ERROR, node->mark, "'%s' is not a number", text);
            return -1;
        }
        node->kind = KLAY_FLOAT;
    } else {
        klay_diag_add(diags, KLAY_ERROR, node->mark, "unsupported YAML tag '!!%s' on a scalar", kind);
        return -1;
    }
    return 0;
}

/* ---------- the event-driven builder ---------- */

typedef struct frame {
    klay_node *node;
    char *anchor;          /* anchor of this open container (aliases to it are recursive) */
    int expect_key;        /* maps: the next node is a key */
    klay_node *key;        /* maps: the key waiting for its value */
    int key_is_merge;      /* maps: the waiting key is the YAML merge key `<<` */
    size_t n_merges;
    klay_node **merges;    /* maps: values of `<<` keys, in YAML order */
    klay_node **merge_keys;
} frame;

typedef struct anchor_def {
    char *name;
    klay_node *snapshot; /* a private copy: the tree's own node may later be moved by a merge */
} anchor_def;

typedef struct loader {
    klay_doc *doc;
    klay_diags *diags;
    frame *stack;
    size_t depth, stack_cap;
    anchor_def *anchors;
    size_t n_anchors, anchors_cap;
    int failed;
} loader;

static klay_mark mark_of(const loader *L, yaml_mark_t m)
{
    klay_mark mark = {L->doc->file, (int)m.line + 1, (int)m.column + 1};
    return mark;
}

static void fail(loader *L, klay_mark mark, const char *what)
{
    klay_diag_add(L->diags, KLAY_ERROR, mark, "%s", what);
    L->failed = 1;
}

static void fail_oom(loader *L, klay_mark mark)
{
    if (L->doc->n_nodes < KLAY_MAX_NODES) {
        fail(L, mark, "out of memory");
        return;
    }
    klay_diag_add(L->diags, KLAY_ERROR, mark, "document too large: alias or merge expansion exceeds the node limit (%d)",
                  KLAY_MAX_NODES);
    L->failed = 1;
}

/* Canonical text of a mapping key for duplicate detection: `1` and `"1"` collide, as they would
 * once KLay turns all-digit port names into positions. */
static void key_identity(const klay_node *key, char *buf, size_t size, const char **text, size_t *len)
{
    if (key->kind == KLAY_INT) {
        int n = snprintf(buf, size, "%lld", (long long)key->integer);
        *text = buf;
        *len = (size_t)n;
    } else {
        *text = key->text;
        *len = strlen(key->text);
    }
}

static int check_duplicate_keys(loader *L, const klay_node *map)
{
    klay_strmap seen = {0};
    char *int_texts = malloc(map->len * 24 + 1);
    int rc = int_texts ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < map->len; ++i) {
        const char *text;
        size_t len;
        key_identity(map->keys[i], int_texts + 24 * i, 24, &text, &len);
        int put = klay_strmap_put(&seen, text, len, (int)i);
        if (put == 1) {
            const klay_node *first = map->keys[klay_strmap_get(&seen, text, len)];
            klay_diag_add(L->diags, KLAY_ERROR, map->keys[i]->mark,
                          "duplicate key '%s' (first defined at line %d, column %d)", map->keys[i]->text,
                          first->mark.line, first->mark.col);
            L->failed = 1;
            rc = -1;
        } else if (put < 0) {
            fail_oom(L, map->mark);
            rc = -1;
        }
    }
    klay_strmap_free(&seen);
    free(int_texts);
    return rc;
}

/* Appends (key, value) to map, replacing the value of an existing equal key in place (Python dict
 * assignment: the position of the first occurrence is kept). */
static int dict_assign(loader *L, klay_node *map, klay_strmap *index, char *id_buf, klay_node *key,
                       klay_node *value)
{
    const char *text;
    size_t len;
    key_identity(key, id_buf, 24, &text, &len);
    int existing = klay_strmap_get(index, text, len);
    if (existing >= 0) {
        klay_node_free(map->keys[existing]);
        klay_node_free(map->items[existing]);
        map->keys[existing] = key;
        map->items[existing] = value;
        return 0;
    }
    if (klay_node_append(map, key, value) != 0 || klay_strmap_put(index, text, len, (int)map->len - 1) < 0) {
        fail_oom(L, map->mark);
        return -1;
    }
    return 0;
}

/* PyYAML's flatten_mapping: the mapping becomes (merged entries, later merge sources first) followed
 * by its own entries, assigned in that order into a dict, so explicit keys win over merged ones and
 * earlier merge sources win over later ones. */
static int apply_merges(loader *L, frame *f)
{
    klay_node *map = f->node;
    size_t n_own = map->len;
    klay_node **own_keys = map->keys, **own_items = map->items;
    map->keys = map->items = NULL;
    map->len = 0;

    klay_strmap index = {0};
    size_t total = n_own;
    for (size_t m = 0; m < f->n_merges; ++m) {
        klay_node *src = f->merges[m];
        if (src->kind == KLAY_MAP) total += src->len;
        else if (src->kind == KLAY_SEQ)
            for (size_t j = 0; j < src->len; ++j) total += src->items[j]->len;
    }
    char *ids = malloc(24 * (total + 1));
    int rc = ids ? 0 : -1;
    size_t slot = 0;

    for (size_t m = f->n_merges; rc == 0 && m-- > 0;) {
        klay_node *src = f->merges[m];
        size_t n_maps = src->kind == KLAY_SEQ ? src->len : 1;
        for (size_t j = n_maps; rc == 0 && j-- > 0;) {
            klay_node *sub = src->kind == KLAY_SEQ ? src->items[j] : src;
            if (sub->kind != KLAY_MAP) {
                klay_diag_add(L->diags, KLAY_ERROR, sub->mark,
                              "the merge key '<<' expects a mapping or a list of mappings, found a %s",
                              klay_node_kind_name(sub->kind));
                L->failed = 1;
                rc = -1;
                break;
            }
            for (size_t k = 0; rc == 0 && k < sub->len; ++k) {
                rc = dict_assign(L, map, &index, ids + 24 * slot++, sub->keys[k], sub->items[k]);
                if (rc == 0) sub->keys[k] = sub->items[k] = NULL;
            }
        }
    }
    for (size_t k = 0; k < n_own; ++k) {
        if (rc == 0) rc = dict_assign(L, map, &index, ids + 24 * slot++, own_keys[k], own_items[k]);
        else {
            klay_node_free(own_keys[k]);
            klay_node_free(own_items[k]);
        }
    }
    /* Sources whose entries were moved out now hold NULL entries: free their shells. */
    for (size_t m = 0; m < f->n_merges; ++m) {
        klay_node *src = f->merges[m];
        size_t n_maps = src->kind == KLAY_SEQ ? src->len : 1;
        for (size_t j = 0; j < n_maps; ++j) {
            klay_node *sub = src->kind == KLAY_SEQ ? src->items[j] : src;
            if (sub->kind != KLAY_MAP) continue;
            for (size_t k = 0; k < sub->len; ++k) {
                klay_node_free(sub->keys[k]);
                klay_node_free(sub->items[k]);
            }
            sub->len = 0;
        }
        klay_node_free(src);
        klay_node_free(f->merge_keys[m]);
    }
    free(f->merges);
    free(f->merge_keys);
    f->merges = f->merge_keys = NULL;
    f->n_merges = 0;
    free(own_keys);
    free(own_items);
    free(ids);
    klay_strmap_free(&index);
    return rc;
}

static void free_frame(frame *f)
{
    klay_node_free(f->node);
    klay_node_free(f->key);
    for (size_t m = 0; m < f->n_merges; ++m) {
        klay_node_free(f->merges[m]);
        klay_node_free(f->merge_keys[m]);
    }
    free(f->merges);
    free(f->merge_keys);
    free(f->anchor);
}

static void register_anchor(loader *L, const char *name, const klay_node *node)
{
    if (L->n_anchors == L->anchors_cap) {
        size_t cap = L->anchors_cap ? 2 * L->anchors_cap : 8;
        anchor_def *anchors = realloc(L->anchors, cap * sizeof *anchors);
        if (!anchors) {
            fail_oom(L, node->mark);
            return;
        }
        L->anchors = anchors;
        L->anchors_cap = cap;
    }
    anchor_def *def = &L->anchors[L->n_anchors];
    def->name = klay_strndup(name, strlen(name));
    def->snapshot = klay_node_copy(L->doc, node, 0);
    if (!def->name || !def->snapshot) {
        free(def->name);
        klay_node_free(def->snapshot);
        fail_oom(L, node->mark);
        return;
    }
    ++L->n_anchors;
}

/* A finished node goes to its parent (as key or value) or becomes the root. Takes ownership. */
static void attach(loader *L, klay_node *node, const char *anchor, int is_merge_key)
{
    if (anchor) register_anchor(L, anchor, node);
    if (L->failed) {
        klay_node_free(node);
        return;
    }
    if (L->depth == 0) {
        L->doc->root = node;
        return;
    }
    frame *f = &L->stack[L->depth - 1];
    if (f->node->kind == KLAY_SEQ) {
        if (klay_node_append(f->node, NULL, node) != 0) {
            klay_node_free(node);
            fail_oom(L, f->node->mark);
        }
        return;
    }
    if (f->expect_key) {
        if (node->kind == KLAY_SEQ || node->kind == KLAY_MAP) {
            fail(L, node->mark, "a mapping key must be a scalar (complex keys are not supported)");
            klay_node_free(node);
            return;
        }
        /* Keys are strings or ints (klay_builder.h); other scalars keep their source text. */
        if (node->kind != KLAY_INT) node->kind = KLAY_STRING;
        f->key = node;
        f->key_is_merge = is_merge_key;
        f->expect_key = 0;
        return;
    }
    f->expect_key = 1;
    klay_node *key = f->key;
    f->key = NULL;
    if (f->key_is_merge) {
        size_t n = f->n_merges;
        klay_node **merges = realloc(f->merges, (n + 1) * sizeof *merges);
        if (merges) f->merges = merges;
        klay_node **keys = merges ? realloc(f->merge_keys, (n + 1) * sizeof *keys) : NULL;
        if (keys) f->merge_keys = keys;
        if (!merges || !keys) {
            klay_node_free(key);
            klay_node_free(node);
            fail_oom(L, f->node->mark);
            return;
        }
        f->merges[n] = node;
        f->merge_keys[n] = key;
        f->n_merges = n + 1;
        return;
    }
    if (klay_node_append(f->node, key, node) != 0) {
        klay_node_free(key);
        klay_node_free(node);
        fail_oom(L, f->node->mark);
    }
}

static int check_container_tag(loader *L, const yaml_char_t *tag, const char *expected, klay_mark mark)
{
    if (!tag || !strcmp((const char *)tag, "!")) return 0;
    char full[64];
    snprintf(full, sizeof full, TAG_PREFIX "%s", expected);
    if (!strcmp((const char *)tag, full)) return 0;
    klay_diag_add(L->diags, KLAY_ERROR, mark, "unsupported YAML tag '%s' on a %s", (const char *)tag,
                  !strcmp(expected, "map") ? "mapping" : "sequence");
    L->failed = 1;
    return -1;
}

static void open_container(loader *L, const yaml_event_t *ev, klay_node_kind kind)
{
    int is_map = kind == KLAY_MAP;
    klay_mark mark = mark_of(L, ev->start_mark);
    const yaml_char_t *tag = is_map ? ev->data.mapping_start.tag : ev->data.sequence_start.tag;
    const yaml_char_t *anchor = is_map ? ev->data.mapping_start.anchor : ev->data.sequence_start.anchor;
    if (check_container_tag(L, tag, is_map ? "map" : "seq", mark) != 0) return;
    if (L->depth >= KLAY_MAX_DEPTH) {
        klay_diag_add(L->diags, KLAY_ERROR, mark, "nesting deeper than %d levels", KLAY_MAX_DEPTH);
        L->failed = 1;
        return;
    }
    if (L->depth == L->stack_cap) {
        size_t cap = L->stack_cap ? 2 * L->stack_cap : 16;
        frame *stack = realloc(L->stack, cap * sizeof *stack);
        if (!stack) {
            fail_oom(L, mark);
            return;
        }
        L->stack = stack;
        L->stack_cap = cap;
    }
    frame *f = &L->stack[L->depth];
    memset(f, 0, sizeof *f);
    f->node = klay_node_new(L->doc, kind, mark);
    f->expect_key = is_map;
    if (anchor) f->anchor = klay_strndup((const char *)anchor, strlen((const char *)anchor));
    if (!f->node || (anchor && !f->anchor)) {
        free_frame(f);
        fail_oom(L, mark);
        return;
    }
    ++L->depth;
}

static void close_container(loader *L)
{
    frame f = L->stack[--L->depth];
    if (f.node->kind == KLAY_MAP && (check_duplicate_keys(L, f.node) != 0 ||
                                     (f.n_merges && apply_merges(L, &f) != 0))) {
        free_frame(&f);
        return;
    }
    klay_node *node = f.node;
    f.node = NULL;
    attach(L, node, f.anchor, 0);
    free_frame(&f);
}

static void on_alias(loader *L, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    klay_mark mark = mark_of(L, ev->start_mark);
    for (size_t i = 0; i < L->depth; ++i) {
        if (L->stack[i].anchor && !strcmp(L->stack[i].anchor, name)) {
            klay_diag_add(L->diags, KLAY_ERROR, mark,
                          "alias *%s refers to a node that contains it (recursive structures are not supported)",
                          name);
            L->failed = 1;
            return;
        }
    }
    for (size_t i = L->n_anchors; i-- > 0;) {
        if (strcmp(L->anchors[i].name, name) != 0) continue;
        klay_node *copy = klay_node_copy(L->doc, L->anchors[i].snapshot, (int)L->depth);
        if (!copy) {
            klay_diag_add(L->diags, KLAY_ERROR, mark,
                          "expanding alias *%s exceeds the node limit (%d) or the nesting limit (%d)",
                          name, KLAY_MAX_NODES, KLAY_MAX_DEPTH);
            L->failed = 1;
            return;
        }
        attach(L, copy, NULL, 0);
        return;
    }
    klay_diag_add(L->diags, KLAY_ERROR, mark, "undefined alias *%s (an alias must follow its anchor &%s)", name,
                  name);
    L->failed = 1;
}

static void on_scalar(loader *L, const yaml_event_t *ev)
{
    klay_mark mark = mark_of(L, ev->start_mark);
    klay_node *node = klay_node_new(L->doc, KLAY_NULL, mark);
    if (!node) {
        fail_oom(L, mark);
        return;
    }
    if (type_scalar(node, ev, L->diags) != 0) {
        klay_node_free(node);
        L->failed = 1;
        return;
    }
    int in_key_position = L->depth > 0 && L->stack[L->depth - 1].expect_key;
    int is_merge_key = in_key_position && ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                       !ev->data.scalar.tag && !strcmp(node->text, "<<");
    attach(L, node, (const char *)ev->data.scalar.anchor, is_merge_key);
}

static void report_parser_error(loader *L, const yaml_parser_t *parser)
{
    klay_mark mark = mark_of(L, parser->problem_mark);
    if (parser->error == YAML_MEMORY_ERROR) {
        fail(L, mark, "out of memory while parsing YAML");
        return;
    }
    if (parser->context)
        klay_diag_add(L->diags, KLAY_ERROR, mark, "YAML syntax error: %s %s (line %d, column %d)",
                      parser->problem ? parser->problem : "invalid YAML", parser->context,
                      (int)parser->context_mark.line + 1, (int)parser->context_mark.column + 1);
    else
        klay_diag_add(L->diags, KLAY_ERROR, mark, "YAML syntax error: %s",
                      parser->problem ? parser->problem : "invalid YAML");
    L->failed = 1;
}

static klay_doc *load(yaml_parser_t *parser, const char *name, klay_diags *diags)
{
    loader L = {0};
    L.diags = diags;
    L.doc = calloc(1, sizeof *L.doc);
    if (!L.doc || !(L.doc->file = klay_strndup(name, strlen(name)))) {
        klay_mark none = {name, 0, 0};
        klay_diag_add(diags, KLAY_ERROR, none, "out of memory");
        free(L.doc);
        return NULL;
    }
    int documents = 0, done = 0;
    while (!done && !L.failed) {
        yaml_event_t ev;
        if (!yaml_parser_parse(parser, &ev)) {
            report_parser_error(&L, parser);
            break;
        }
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1)
                fail(&L, mark_of(&L, ev.start_mark),
                     "more than one YAML document in the stream (a model is a single document)");
            break;
        case YAML_MAPPING_START_EVENT: open_container(&L, &ev, KLAY_MAP); break;
        case YAML_SEQUENCE_START_EVENT: open_container(&L, &ev, KLAY_SEQ); break;
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT: close_container(&L); break;
        case YAML_SCALAR_EVENT: on_scalar(&L, &ev); break;
        case YAML_ALIAS_EVENT: on_alias(&L, &ev); break;
        case YAML_STREAM_END_EVENT: done = 1; break;
        default: break;
        }
        yaml_event_delete(&ev);
    }
    while (L.depth > 0) free_frame(&L.stack[--L.depth]);
    free(L.stack);
    for (size_t i = 0; i < L.n_anchors; ++i) {
        free(L.anchors[i].name);
        klay_node_free(L.anchors[i].snapshot);
    }
    free(L.anchors);
    if (L.failed) {
        klay_doc_free(L.doc);
        return NULL;
    }
    if (!L.doc->root) { /* an empty file is an empty mapping, as OmegaConf.load gives {} */
        klay_mark start = {L.doc->file, 1, 1};
        L.doc->root = klay_node_new(L.doc, KLAY_MAP, start);
        if (!L.doc->root) {
            klay_doc_free(L.doc);
            return NULL;
        }
    }
    if (klay_resolve_interpolations(L.doc, diags) != 0) {
        klay_doc_free(L.doc);
        return NULL;
    }
    return L.doc;
}

klay_doc *klay_doc_load_string(const char *yaml, size_t len, const char *name, klay_diags *diags)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) return NULL;
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    klay_doc *doc = load(&parser, name ? name : "<string>", diags);
    yaml_parser_delete(&parser);
    return doc;
}

klay_doc *klay_doc_load_file(const char *path, klay_diags *diags)
{
    FILE *file = fopen(path, "rb");
    if (!file) {
        klay_mark none = {path, 0, 0};
        klay_diag_add(diags, KLAY_ERROR, none, "cannot open: %s", strerror(errno));
        return NULL;
    }
    /* fopen succeeds on a directory; reading it would fail later as a bare "input error". */
    struct stat info;
    if (fstat(fileno(file), &info) == 0 && S_ISDIR(info.st_mode)) {
        klay_mark none = {path, 0, 0};
        klay_diag_add(diags, KLAY_ERROR, none, "is a directory, not a YAML file");
        fclose(file);
        return NULL;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) {
        fclose(file);
        return NULL;
    }
    yaml_parser_set_input_file(&parser, file);
    klay_doc *doc = load(&parser, path, diags);
    yaml_parser_delete(&parser);
    fclose(file);
    return doc;
}
