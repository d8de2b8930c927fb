/* KLay irreps blocks -> e3nn irreps text (docs/layers.md#irreps-blocks; KLay's
 * `irreps_blocks_to_string`):
 * [{l: 0, mul: 32}, {l: 1, mul: 16, p: e}] -> "32x0e + 16x1e". One entry per block, in order, never
 * merged or sorted. */
#include "internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Python int() of a YAML value as KLay applies it to `l` and `mul`: ints, numeric strings
 * (surrounding blanks allowed) and integral floats. Booleans and fractional numbers are refused
 * although Python would accept them: there they are mistakes. */
static int integer_value(const klay_node *node, long long *out)
{
    if (node->kind == KLAY_INT) {
        *out = node->integer;
        return 0;
    }
    if (node->kind == KLAY_FLOAT) {
        if (!isfinite(node->real) || node->real != floor(node->real) || fabs(node->real) > 1e15) return -1;
        *out = (long long)node->real;
        return 0;
    }
    if (node->kind != KLAY_STRING) return -1;
    const char *p = node->text;
    while (*p == ' ' || *p == '\t') ++p;
    char digits[24];
    size_t n = 0;
    if (*p == '+' || *p == '-') digits[n++] = *p++;
    if (!(*p >= '0' && *p <= '9')) return -1;
    for (; (*p >= '0' && *p <= '9') || (*p == '_' && p[1] >= '0' && p[1] <= '9'); ++p) {
        if (*p == '_') continue;
        if (n + 1 >= sizeof digits) return -1;
        digits[n++] = *p;
    }
    while (*p == ' ' || *p == '\t') ++p;
    if (*p) return -1;
    digits[n] = '\0';
    *out = strtoll(digits, NULL, 10);
    return 0;
}

static char parity_letter(const klay_node *p, long long l)
{
    if (!p || p->kind == KLAY_NULL) return l % 2 == 0 ? 'e' : 'o';
    if (p->kind != KLAY_STRING) return 0;
    char lower[8] = {0};
    size_t n = strlen(p->text);
    if (n >= sizeof lower) return 0;
    for (size_t i = 0; i < n; ++i) lower[i] = (char)(p->text[i] >= 'A' && p->text[i] <= 'Z' ? p->text[i] + 32 : p->text[i]);
    if (!strcmp(lower, "e") || !strcmp(lower, "even")) return 'e';
    if (!strcmp(lower, "o") || !strcmp(lower, "odd")) return 'o';
    return 0;
}

int klay_irreps_blocks_to_string(const klay_node *blocks, char *buf, size_t size, klay_diags *diags)
{
    static const char *const fields[] = {"l", "mul", "p", NULL};
    if (!blocks || blocks->kind != KLAY_SEQ) {
        klay_mark none = {NULL, 0, 0};
        klay_diag_add(diags, KLAY_ERROR, blocks ? blocks->mark : none,
                      "irreps blocks must be a list of {l, mul, p} mappings, not a %s",
                      blocks ? klay_node_kind_name(blocks->kind) : "missing value");
        return -1;
    }
    klay_strbuf text = {0};
    int rc = 0;
    for (size_t i = 0; i < blocks->len && rc == 0; ++i) {
        const klay_node *block = blocks->items[i];
        if (block->kind != KLAY_MAP) {
            klay_diag_add(diags, KLAY_ERROR, block->mark, "irreps block %zu must be a mapping {l, mul, p}, not a %s",
                          i, klay_node_kind_name(block->kind));
            rc = -1;
            break;
        }
        for (size_t k = 0; k < block->len && rc == 0; ++k) {
            const char *name = block->keys[k]->kind == KLAY_STRING ? block->keys[k]->text : "";
            if (!strcmp(name, "l") || !strcmp(name, "mul") || !strcmp(name, "p")) continue;
            const char *best = klay_closest_name(block->keys[k]->text, fields, KLAY_UNCOUNTED);
            klay_diag_add(diags, KLAY_ERROR, block->keys[k]->mark,
                          "irreps block %zu: unknown key '%s' (expected l, mul and optionally p)%s%s%s", i,
                          block->keys[k]->text, best ? "; did you mean '" : "", best ? best : "", best ? "'?" : "");
            rc = -1;
        }
        if (rc) break;
        const klay_node *l_node = klay_map_get(block, "l"), *mul_node = klay_map_get(block, "mul");
        long long l = 0, mul = 0;
        const char *missing = !l_node ? "l" : !mul_node ? "mul" : NULL;
        if (missing) {
            klay_diag_add(diags, KLAY_ERROR, block->mark, "irreps block %zu: missing '%s'", i, missing);
            rc = -1;
        } else if (integer_value(l_node, &l) != 0 || l < 0) {
            klay_diag_add(diags, KLAY_ERROR, l_node->mark, "irreps block %zu: l must be an integer >= 0, got '%s'", i,
                          l_node->text ? l_node->text : klay_node_kind_name(l_node->kind));
            rc = -1;
        } else if (integer_value(mul_node, &mul) != 0 || mul < 0) {
            klay_diag_add(diags, KLAY_ERROR, mul_node->mark,
                          "irreps block %zu: mul must be an integer >= 0, got '%s'", i,
                          mul_node->text ? mul_node->text : klay_node_kind_name(mul_node->kind));
            rc = -1;
        } else {
            const klay_node *p_node = klay_map_get(block, "p");
            char parity = parity_letter(p_node, l);
            if (!parity) {
                klay_diag_add(diags, KLAY_ERROR, p_node->mark,
                              "irreps block %zu: parity p must be e, even, o or odd, got '%s'", i,
                              p_node->text ? p_node->text : klay_node_kind_name(p_node->kind));
                rc = -1;
            } else {
                klay_sb_printf(&text, "%s%lldx%lld%c", i ? " + " : "", mul, l, parity);
            }
        }
    }
    char *result = klay_sb_take(&text);
    if (rc != 0 || !result) {
        free(result);
        return -1;
    }
    size_t len = strlen(result);
    if (buf && size) snprintf(buf, size, "%s", result);
    free(result);
    return (int)len;
}
