/* The typed YAML tree: allocation, copying, lookup. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

klay_node *klay_node_new(klay_doc *doc, klay_node_kind kind, klay_mark mark)
{
    if (doc->n_nodes >= KLAY_MAX_NODES) return NULL;
    klay_node *node = calloc(1, sizeof *node);
    if (!node) return NULL;
    ++doc->n_nodes;
    node->kind = kind;
    node->mark = mark;
    return node;
}

void klay_node_clear(klay_node *node)
{
    /* Iterative over the items of this node only; depth is bounded by KLAY_MAX_DEPTH. */
    for (size_t i = 0; i < node->len; ++i) {
        klay_node_free(node->items[i]);
        if (node->keys) klay_node_free(node->keys[i]);
    }
    free(node->items);
    free(node->keys);
    free(node->text);
    klay_mark mark = node->mark;
    memset(node, 0, sizeof *node);
    node->kind = KLAY_NULL;
    node->mark = mark;
}

void klay_node_free(klay_node *node)
{
    if (!node) return;
    klay_node_clear(node);
    free(node);
}

int klay_node_append(klay_node *container, klay_node *key, klay_node *value)
{
    size_t n = container->len;
    if ((n & (n - 1)) == 0) { /* capacity is the next power of two, as for diagnostics */
        size_t cap = n ? 2 * n : 1;
        klay_node **items = realloc(container->items, cap * sizeof *items);
        if (!items) return -1;
        container->items = items;
        if (container->kind == KLAY_MAP) {
            klay_node **keys = realloc(container->keys, cap * sizeof *keys);
            if (!keys) return -1;
            container->keys = keys;
        }
    }
    container->items[n] = value;
    if (container->kind == KLAY_MAP) container->keys[n] = key;
    container->len = n + 1;
    return 0;
}

klay_node *klay_node_copy(klay_doc *doc, const klay_node *src, int depth)
{
    if (depth > KLAY_MAX_DEPTH) return NULL;
    klay_node *copy = klay_node_new(doc, src->kind, src->mark);
    if (!copy) return NULL;
    copy->boolean = src->boolean;
    copy->integer = src->integer;
    copy->real = src->real;
    if (src->text && !(copy->text = klay_strndup(src->text, strlen(src->text)))) goto fail;
    for (size_t i = 0; i < src->len; ++i) {
        klay_node *key = NULL, *item = klay_node_copy(doc, src->items[i], depth + 1);
        if (item && src->keys) key = klay_node_copy(doc, src->keys[i], depth + 1);
        if (!item || (src->keys && !key) || klay_node_append(copy, key, item) != 0) {
            klay_node_free(item);
            klay_node_free(key);
            goto fail;
        }
    }
    return copy;
fail:
    klay_node_free(copy);
    return NULL;
}

const klay_node *klay_map_get(const klay_node *map, const char *key)
{
    if (!map || map->kind != KLAY_MAP || !key) return NULL;
    for (size_t i = 0; i < map->len; ++i)
        if (map->keys[i]->kind == KLAY_STRING && strcmp(map->keys[i]->text, key) == 0) return map->items[i];
    return NULL;
}

const char *klay_node_kind_name(klay_node_kind kind)
{
    switch (kind) {
    case KLAY_NULL: return "null";
    case KLAY_BOOL: return "bool";
    case KLAY_INT: return "int";
    case KLAY_FLOAT: return "float";
    case KLAY_STRING: return "string";
    case KLAY_SEQ: return "list";
    case KLAY_MAP: return "map";
    }
    return "?";
}

const klay_node *klay_doc_root(const klay_doc *doc) { return doc ? doc->root : NULL; }

void klay_doc_free(klay_doc *doc)
{
    if (!doc) return;
    klay_node_free(doc->root);
    free(doc->file);
    free(doc);
}
