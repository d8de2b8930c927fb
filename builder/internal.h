/* Private declarations shared by the builder's translation units (not installed). */
#ifndef KLAY_BUILDER_INTERNAL_H
#define KLAY_BUILDER_INTERNAL_H

#include "klay_builder.h"
#include "klay_suggest.h"

#include <stdarg.h>
#include <stddef.h>

/* ---------- diagnostics ---------- */

#if defined(__GNUC__)
#define KLAY_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KLAY_PRINTF(f, a)
#endif

void klay_diag_add(klay_diags *d, klay_severity severity, klay_mark mark, const char *fmt, ...)
    KLAY_PRINTF(4, 5);

/* ---------- growable string buffer ---------- */

typedef struct klay_strbuf {
    char *data;
    size_t len, cap;
    int failed; /* an allocation failed: the contents are incomplete */
} klay_strbuf;

void klay_sb_append(klay_strbuf *sb, const char *text, size_t len);
void klay_sb_puts(klay_strbuf *sb, const char *text);
void klay_sb_printf(klay_strbuf *sb, const char *fmt, ...) KLAY_PRINTF(2, 3);
/* Takes the text (NUL-terminated, never NULL unless allocation failed) and resets sb. */
char *klay_sb_take(klay_strbuf *sb);

char *klay_strndup(const char *text, size_t len);

/* ---------- string -> int hash map (names of inputs, layers, aliases; duplicate keys) ---------- */

typedef struct klay_strmap_slot {
    const char *key; /* borrowed; NULL = empty slot */
    size_t len;
    int value;
} klay_strmap_slot;

typedef struct klay_strmap {
    size_t count, cap;
    klay_strmap_slot *slots;
} klay_strmap;

/* Returns 0 if inserted, 1 if the key was already present (value left unchanged), -1 on OOM. */
int klay_strmap_put(klay_strmap *m, const char *key, size_t len, int value);
/* Value of key, or -1 when absent. */
int klay_strmap_get(const klay_strmap *m, const char *key, size_t len);
void klay_strmap_free(klay_strmap *m);

/* ---------- the typed tree ---------- */

/* Upper bounds that keep hostile input (alias bombs, interpolation bombs, deep nesting) from
 * exhausting memory or the C stack; real KLay models are orders of magnitude below them. */
#define KLAY_MAX_NODES 500000
#define KLAY_MAX_DEPTH 256
#define KLAY_MAX_INTERPOLATION_CHAIN 1000 /* nested lazy resolutions (each uses C stack) */

struct klay_doc {
    char *file;
    klay_node *root;
    size_t n_nodes; /* nodes allocated so far (bounded by KLAY_MAX_NODES) */
};

klay_node *klay_node_new(klay_doc *doc, klay_node_kind kind, klay_mark mark);
void klay_node_free(klay_node *node);
/* Releases the contents of `node` (text, children) and leaves it an empty KLAY_NULL. */
void klay_node_clear(klay_node *node);
/* Deep copy; NULL when the node budget is exhausted or the copy would nest too deep. */
klay_node *klay_node_copy(klay_doc *doc, const klay_node *src, int depth);
/* Appends an item (and its key for maps); returns 0 on success. */
int klay_node_append(klay_node *container, klay_node *key, klay_node *value);

/* Resolves every ${...} interpolation of the document in place; returns 0 on success. */
int klay_resolve_interpolations(klay_doc *doc, klay_diags *diags);

/* Python's str() of a scalar (repr for floats, True/False, None): what OmegaConf writes when an
 * interpolation is embedded in a longer string. */
void klay_scalar_to_python_text(const klay_node *node, klay_strbuf *out);

#endif
