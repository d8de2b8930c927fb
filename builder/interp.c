/* OmegaConf interpolation: `${a.b.c}`, `${a.list.0}`, `${a.list[0]}` as absolute paths from the
 * document root. A scalar that is exactly one interpolation takes the referenced node's type (a
 * container is deep-copied); interpolations embedded in text produce a string (Python str() of each
 * value). `\${` is a literal `${`. Resolution is lazy, so chains resolve in any order and cycles are
 * found by the in-progress state. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { UNRESOLVED = 0, IN_PROGRESS = 1, RESOLVED = 2 };

typedef struct pending {
    klay_node *node; /* a string scalar containing "${" */
    int depth;       /* its nesting depth (bounds the depth of what is copied into it) */
    int state;
} pending;

/* Key index of a large mapping, so that paths into model_layers stay O(1) per step. */
typedef struct map_index {
    const klay_node *map; /* the address bytes of this field key R->map_indexes */
    klay_strmap keys;     /* string key -> item index */
} map_index;

#define MAP_INDEX_MIN_LEN 16

typedef struct resolver {
    klay_doc *doc;
    klay_diags *diags;
    pending *items;
    size_t count, cap;
    klay_strmap by_address; /* node address -> index in items */
    size_t *chain;          /* indices currently being resolved, outermost first */
    size_t chain_len;
    klay_strmap map_indexes; /* map address -> index into `indexes` */
    map_index **indexes;
    size_t n_indexes;
} resolver;

/* ---------- Python str() of scalars ---------- */

/* Python's repr(float): the shortest digits that round-trip, fixed notation for decimal exponents
 * in [-4, 16), scientific ("1e+16", "1.5e-07") outside. */
static void python_float_repr(double value, klay_strbuf *out)
{
    if (isnan(value)) {
        klay_sb_puts(out, "nan");
        return;
    }
    if (isinf(value)) {
        klay_sb_puts(out, value < 0 ? "-inf" : "inf");
        return;
    }
    char sci[40];
    for (int precision = 0; precision < 17; ++precision) {
        snprintf(sci, sizeof sci, "%.*e", precision, value);
        if (strtod(sci, NULL) == value) break;
    }
    /* sci = [-]d[.ddd]e(+|-)XX */
    const char *p = sci;
    if (*p == '-') {
        klay_sb_puts(out, "-");
        ++p;
    }
    char digits[24];
    size_t n = 0;
    for (; *p && *p != 'e'; ++p)
        if (*p != '.') digits[n++] = *p;
    while (n > 1 && digits[n - 1] == '0') --n;
    digits[n] = '\0';
    int exponent = atoi(p + 1);
    if (exponent < -4 || exponent >= 16) {
        klay_sb_append(out, digits, 1);
        if (n > 1) {
            klay_sb_puts(out, ".");
            klay_sb_append(out, digits + 1, n - 1);
        }
        klay_sb_printf(out, "e%c%02d", exponent < 0 ? '-' : '+', exponent < 0 ? -exponent : exponent);
    } else if (exponent >= 0) {
        size_t int_digits = (size_t)exponent + 1;
        for (size_t i = 0; i < int_digits; ++i) klay_sb_append(out, i < n ? &digits[i] : "0", 1);
        klay_sb_puts(out, ".");
        if (n > int_digits) klay_sb_append(out, digits + int_digits, n - int_digits);
        else klay_sb_puts(out, "0");
    } else {
        klay_sb_puts(out, "0.");
        for (int i = 0; i < -exponent - 1; ++i) klay_sb_puts(out, "0");
        klay_sb_append(out, digits, n);
    }
}

void klay_scalar_to_python_text(const klay_node *node, klay_strbuf *out)
{
    switch (node->kind) {
    case KLAY_NULL: klay_sb_puts(out, "None"); break;
    case KLAY_BOOL: klay_sb_puts(out, node->boolean ? "True" : "False"); break;
    case KLAY_INT: klay_sb_printf(out, "%lld", (long long)node->integer); break;
    case KLAY_FLOAT: python_float_repr(node->real, out); break;
    case KLAY_STRING: klay_sb_puts(out, node->text); break;
    case KLAY_SEQ:
    case KLAY_MAP: break;
    }
}

/* ---------- bookkeeping ---------- */

static int has_interpolation(const klay_node *node)
{
    return node->kind == KLAY_STRING && strstr(node->text, "${") != NULL;
}

static int collect(resolver *R, klay_node *node, int depth)
{
    if (has_interpolation(node)) {
        if (R->count == R->cap) {
            size_t cap = R->cap ? 2 * R->cap : 64;
            pending *items = realloc(R->items, cap * sizeof *items);
            if (!items) return -1;
            R->items = items;
            R->cap = cap;
        }
        R->items[R->count++] = (pending){node, depth, UNRESOLVED};
    }
    for (size_t i = 0; i < node->len; ++i)
        if (collect(R, node->items[i], depth + 1) != 0) return -1;
    return 0;
}

/* The index of `node` in R->items, or -1 if it holds no interpolation. Keys of by_address are
 * the bytes of the `node` fields themselves (stable: items is not reallocated after collection). */
static int pending_index(const resolver *R, const klay_node *node)
{
    return klay_strmap_get(&R->by_address, (const char *)&node, sizeof node);
}

static void describe_chain(const resolver *R, klay_strbuf *sb)
{
    if (R->chain_len < 2) return;
    klay_sb_puts(sb, " (resolving ");
    for (size_t i = 0; i < R->chain_len; ++i) {
        const klay_node *n = R->items[R->chain[i]].node;
        klay_sb_printf(sb, "%s'%s' at line %d, column %d", i ? " -> " : "", n->text, n->mark.line, n->mark.col);
    }
    klay_sb_puts(sb, ")");
}

static void report(resolver *R, const klay_node *at, const char *message)
{
    klay_strbuf sb = {0};
    klay_sb_puts(&sb, message);
    describe_chain(R, &sb);
    char *text = klay_sb_take(&sb);
    klay_diag_add(R->diags, KLAY_ERROR, at->mark, "%s", text ? text : message);
    free(text);
}

static int resolve_pending(resolver *R, size_t index);

/* Resolves every interpolation inside `node` (so a copy of it is final). */
static int resolve_subtree(resolver *R, const klay_node *node)
{
    int index = pending_index(R, node);
    if (index >= 0) return resolve_pending(R, (size_t)index);
    for (size_t i = 0; i < node->len; ++i)
        if (resolve_subtree(R, node->items[i]) != 0) return -1;
    return 0;
}

/* ---------- paths ---------- */

/* Item of `map` under the string key seg[0..len) or, failing that, the integer key `number`. */
static const klay_node *map_item(resolver *R, const klay_node *map, const char *seg, size_t len, long long number)
{
    if (map->len >= MAP_INDEX_MIN_LEN) {
        int slot = klay_strmap_get(&R->map_indexes, (const char *)&map, sizeof map);
        if (slot < 0) {
            map_index **grown = realloc(R->indexes, (R->n_indexes + 1) * sizeof *grown);
            map_index *index = calloc(1, sizeof *index);
            if (grown) R->indexes = grown;
            if (!grown || !index) {
                free(index);
                return NULL;
            }
            index->map = map;
            R->indexes[R->n_indexes] = index;
            slot = (int)R->n_indexes++;
            klay_strmap_put(&R->map_indexes, (const char *)&index->map, sizeof index->map, slot);
            for (size_t i = 0; i < map->len; ++i)
                if (map->keys[i]->kind == KLAY_STRING)
                    klay_strmap_put(&index->keys, map->keys[i]->text, strlen(map->keys[i]->text), (int)i);
        }
        int item = klay_strmap_get(&R->indexes[slot]->keys, seg, len);
        if (item >= 0) return map->items[item];
    } else {
        for (size_t i = 0; i < map->len; ++i) {
            const klay_node *key = map->keys[i];
            if (key->kind == KLAY_STRING && strlen(key->text) == len && !strncmp(key->text, seg, len))
                return map->items[i];
        }
    }
    for (size_t i = 0; number >= 0 && i < map->len; ++i)
        if (map->keys[i]->kind == KLAY_INT && map->keys[i]->integer == number) return map->items[i];
    return NULL;
}

/* Finds the node at `path` (dotted keys and [index] subscripts) from the root, resolving
 * interpolations met on the way. Reports an error at `at` and returns NULL when absent. */
static const klay_node *lookup(resolver *R, const klay_node *at, const char *path)
{
    const klay_node *node = R->doc->root;
    const char *p = path;
    char message[512];
    while (*p) {
        const char *seg = p;
        size_t len;
        if (*p == '[') {
            seg = ++p;
            while (*p && *p != ']') ++p;
            if (*p != ']') {
                snprintf(message, sizeof message, "interpolation '${%s}': missing ']'", path);
                report(R, at, message);
                return NULL;
            }
            len = (size_t)(p - seg);
            ++p;
        } else {
            while (*p && *p != '.' && *p != '[') ++p;
            len = (size_t)(p - seg);
        }
        if (len == 0) {
            snprintf(message, sizeof message, "interpolation '${%s}': empty key in the path", path);
            report(R, at, message);
            return NULL;
        }
        if (*p == '.') {
            ++p;
            if (!*p) {
                snprintf(message, sizeof message, "interpolation '${%s}': path ends with '.'", path);
                report(R, at, message);
                return NULL;
            }
        }

        int index = pending_index(R, node);
        if (index >= 0 && resolve_pending(R, (size_t)index) != 0) return NULL;

        int all_digits = strspn(seg, "0123456789") >= len;
        long long number = all_digits && len < 18 ? strtoll(seg, NULL, 10) : -1;
        const klay_node *next = NULL;
        if (node->kind == KLAY_MAP) {
            next = map_item(R, node, seg, len, number);
            if (!next) {
                const char **names = malloc((node->len + 1) * sizeof *names);
                char *wanted = klay_strndup(seg, len);
                const char *suggestion = NULL;
                if (names && wanted) {
                    for (size_t i = 0; i < node->len; ++i)
                        names[i] = node->keys[i]->kind == KLAY_STRING ? node->keys[i]->text : NULL;
                    suggestion = klay_closest_name(wanted, names, node->len);
                }
                snprintf(message, sizeof message,
                         "interpolation '${%s}': key '%.*s' not found in '%.*s'%s%s%s", path, (int)len, seg,
                         (int)(seg - path > 0 ? seg - path - 1 : 0), path, suggestion ? "; did you mean '" : "",
                         suggestion ? suggestion : "", suggestion ? "'?" : "");
                if (seg == path) /* top level: name the root */
                    snprintf(message, sizeof message,
                             "interpolation '${%s}': key '%.*s' not found at the top level%s%s%s", path,
                             (int)len, seg, suggestion ? "; did you mean '" : "", suggestion ? suggestion : "",
                             suggestion ? "'?" : "");
                free(names);
                free(wanted);
                report(R, at, message);
                return NULL;
            }
        } else if (node->kind == KLAY_SEQ) {
            if (!all_digits || number < 0 || (size_t)number >= node->len) {
                snprintf(message, sizeof message,
                         "interpolation '${%s}': index '%.*s' is not valid for a list of %zu items", path,
                         (int)len, seg, node->len);
                report(R, at, message);
                return NULL;
            }
            next = node->items[number];
        } else {
            snprintf(message, sizeof message, "interpolation '${%s}': cannot select '%.*s' inside a %s value",
                     path, (int)len, seg, klay_node_kind_name(node->kind));
            report(R, at, message);
            return NULL;
        }
        node = next;
    }
    int index = pending_index(R, node);
    if (index >= 0 && resolve_pending(R, (size_t)index) != 0) return NULL;
    return node;
}

/* ---------- one scalar ---------- */

/* Splits off the next piece of `text`: literal text (with \${ unescaped) up to the next `${`, or
 * one `${...}` expression. Returns the expression text (NUL-terminated copy) in *expr. */
typedef struct piece {
    int is_expr;
    char *text; /* owned */
    const char *rest;
} piece;

static int next_piece(const char *text, piece *out, const char **error)
{
    out->is_expr = 0;
    out->text = NULL;
    if (text[0] == '$' && text[1] == '{') {
        const char *end = text + 2;
        while (*end && *end != '}') {
            if (end[0] == '$' && end[1] == '{') {
                *error = "nested interpolations are not supported";
                return -1;
            }
            ++end;
        }
        if (!*end) {
            *error = "unterminated interpolation (missing '}')";
            return -1;
        }
        const char *a = text + 2, *b = end;
        while (a < b && *a == ' ') ++a;
        while (b > a && b[-1] == ' ') --b;
        out->is_expr = 1;
        out->text = klay_strndup(a, (size_t)(b - a));
        out->rest = end + 1;
        return out->text ? 0 : -1;
    }
    klay_strbuf sb = {0};
    const char *p = text;
    while (*p && !(p[0] == '$' && p[1] == '{')) {
        if (p[0] == '\\' && p[1] == '$' && p[2] == '{') {
            klay_sb_puts(&sb, "${");
            p += 3;
        } else {
            klay_sb_append(&sb, p, 1);
            ++p;
        }
    }
    out->text = klay_sb_take(&sb);
    out->rest = p;
    return out->text ? 0 : -1;
}

static int check_expression(resolver *R, const klay_node *at, const char *expr)
{
    char message[512];
    const char *problem = NULL;
    if (!*expr) problem = "is empty";
    else if (expr[0] == '.') problem = "is relative; only absolute paths from the document root are supported";
    else if (strchr(expr, ':')) problem = "uses a resolver; resolvers (e.g. oc.env) are not supported";
    if (!problem) return 0;
    snprintf(message, sizeof message, "interpolation '${%s}' %s", expr, problem);
    report(R, at, message);
    return -1;
}

/* Replaces the content of `node` by a deep copy of `target` (keeping node's position). */
static int become_copy(resolver *R, klay_node *node, int depth, const klay_node *target)
{
    klay_node *copy = klay_node_copy(R->doc, target, depth);
    if (!copy) {
        char message[256];
        snprintf(message, sizeof message,
                 "interpolation result exceeds the limits (%d nodes, %d levels of nesting)", KLAY_MAX_NODES,
                 KLAY_MAX_DEPTH);
        report(R, node, message);
        return -1;
    }
    klay_mark mark = node->mark;
    klay_node_clear(node);
    *node = *copy;
    node->mark = mark;
    free(copy);
    return 0;
}

static int resolve_pending(resolver *R, size_t index)
{
    pending *item = &R->items[index];
    if (item->state == RESOLVED) return 0;
    klay_node *node = item->node;
    if (item->state == IN_PROGRESS) {
        klay_strbuf sb = {0};
        klay_sb_puts(&sb, "interpolation cycle: ");
        size_t start = 0;
        while (R->chain[start] != index) ++start;
        for (size_t i = start; i < R->chain_len; ++i) {
            const klay_node *n = R->items[R->chain[i]].node;
            klay_sb_printf(&sb, "'%s' (line %d, column %d) -> ", n->text, n->mark.line, n->mark.col);
        }
        klay_sb_printf(&sb, "'%s'", node->text);
        char *text = klay_sb_take(&sb);
        const klay_node *innermost = R->items[R->chain[R->chain_len - 1]].node;
        klay_diag_add(R->diags, KLAY_ERROR, innermost->mark, "%s", text ? text : "interpolation cycle");
        free(text);
        return -1;
    }
    if (R->chain_len >= KLAY_MAX_INTERPOLATION_CHAIN) {
        char message[128];
        snprintf(message, sizeof message, "interpolation chain longer than %d references",
                 KLAY_MAX_INTERPOLATION_CHAIN);
        klay_diag_add(R->diags, KLAY_ERROR, node->mark, "%s", message);
        return -1;
    }
    item->state = IN_PROGRESS;
    R->chain[R->chain_len++] = index;

    int rc = 0;
    const char *error = NULL;
    piece first;
    if (next_piece(node->text, &first, &error) != 0) {
        rc = -1;
    } else if (first.is_expr && !*first.rest) {
        /* Exactly one interpolation: the value keeps the referenced node's type. */
        const klay_node *target = NULL;
        rc = check_expression(R, node, first.text);
        if (rc == 0 && !(target = lookup(R, node, first.text))) rc = -1;
        if (rc == 0) rc = resolve_subtree(R, target);
        if (rc == 0) rc = become_copy(R, node, R->items[index].depth, target);
        free(first.text);
    } else {
        klay_strbuf sb = {0};
        piece pc = first;
        for (;;) {
            if (pc.is_expr) {
                const klay_node *target = NULL;
                if (check_expression(R, node, pc.text) != 0 || !(target = lookup(R, node, pc.text))) rc = -1;
                else if (target->kind == KLAY_SEQ || target->kind == KLAY_MAP) {
                    char message[512];
                    snprintf(message, sizeof message,
                             "interpolation '${%s}' refers to a %s, which cannot be embedded in a string", pc.text,
                             klay_node_kind_name(target->kind));
                    report(R, node, message);
                    rc = -1;
                } else {
                    klay_scalar_to_python_text(target, &sb);
                }
            } else {
                klay_sb_puts(&sb, pc.text);
            }
            free(pc.text);
            if (rc != 0 || !*pc.rest) break;
            if (next_piece(pc.rest, &pc, &error) != 0) {
                rc = -1;
                break;
            }
        }
        char *text = klay_sb_take(&sb);
        if (rc == 0 && text) {
            free(node->text);
            node->text = text;
        } else {
            free(text);
            if (rc == 0) rc = -1;
        }
    }
    if (error) report(R, node, error);

    --R->chain_len;
    R->items[index].state = rc == 0 ? RESOLVED : IN_PROGRESS;
    return rc;
}

int klay_resolve_interpolations(klay_doc *doc, klay_diags *diags)
{
    resolver R = {0};
    R.doc = doc;
    R.diags = diags;
    int rc = collect(&R, doc->root, 0);
    for (size_t i = 0; rc == 0 && i < R.count; ++i)
        if (klay_strmap_put(&R.by_address, (const char *)&R.items[i].node, sizeof(klay_node *), (int)i) < 0) rc = -1;
    if (rc == 0 && R.count && !(R.chain = malloc(R.count * sizeof *R.chain))) rc = -1;
    if (rc != 0) {
        klay_mark none = {doc->file, 0, 0};
        klay_diag_add(diags, KLAY_ERROR, none, "out of memory while resolving interpolations");
    }
    for (size_t i = 0; rc == 0 && i < R.count; ++i) rc = resolve_pending(&R, i);
    free(R.items);
    free(R.chain);
    klay_strmap_free(&R.by_address);
    for (size_t i = 0; i < R.n_indexes; ++i) {
        klay_strmap_free(&R.indexes[i]->keys);
        free(R.indexes[i]);
    }
    free(R.indexes);
    klay_strmap_free(&R.map_indexes);
    return rc;
}
