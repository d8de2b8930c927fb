/* Diagnostics, string buffers and the name hash map. */
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *klay_strndup(const char *text, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy) return NULL;
    memcpy(copy, text, len);
    copy[len] = '\0';
    return copy;
}

/* ---------- diagnostics ---------- */

void klay_diags_init(klay_diags *d)
{
    d->count = 0;
    d->items = NULL;
}

void klay_diags_free(klay_diags *d)
{
    for (size_t i = 0; i < d->count; ++i) {
        free(d->items[i].message);
        free((char *)d->items[i].mark.file);
    }
    free(d->items);
    klay_diags_init(d);
}

size_t klay_diags_errors(const klay_diags *d)
{
    size_t errors = 0;
    for (size_t i = 0; i < d->count; ++i) errors += d->items[i].severity == KLAY_ERROR;
    return errors;
}

void klay_diag_add(klay_diags *d, klay_severity severity, klay_mark mark, const char *fmt, ...)
{
    if (!d) return;
    /* The array has no capacity field: it grows to the next power of two whenever the count
     * reaches one, which keeps appends amortised O(1). */
    if ((d->count & (d->count - 1)) == 0) {
        size_t cap = d->count ? 2 * d->count : 1;
        klay_diag *items = realloc(d->items, cap * sizeof *items);
        if (!items) return;
        d->items = items;
    }
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *message = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (message) vsnprintf(message, (size_t)n + 1, fmt, ap2);
    va_end(ap2);
    /* Diagnostics outlive the document that produced them (a failed load frees it), so each one
     * keeps its own copy of the file name. */
    char *file = mark.file ? klay_strndup(mark.file, strlen(mark.file)) : NULL;
    if (!message || (mark.file && !file)) {
        free(message);
        free(file);
        return;
    }
    klay_diag *item = &d->items[d->count++];
    item->severity = severity;
    item->mark = mark;
    item->mark.file = file;
    item->message = message;
}

size_t klay_diags_format(const klay_diags *d, char *buf, size_t size)
{
    size_t needed = 0;
    for (size_t i = 0; i < d->count; ++i) {
        const klay_diag *item = &d->items[i];
        const char *severity = item->severity == KLAY_ERROR ? "error" : "warning";
        const char *file = item->mark.file ? item->mark.file : "<input>";
        char *dst = buf && needed < size ? buf + needed : NULL;
        size_t room = dst ? size - needed : 0;
        int n;
        if (item->mark.line > 0)
            n = snprintf(dst, room, "%s:%d:%d: %s: %s\n", file, item->mark.line, item->mark.col,
                         severity, item->message);
        else
            n = snprintf(dst, room, "%s: %s: %s\n", file, severity, item->message);
        if (n > 0) needed += (size_t)n;
    }
    if (buf && size > 0 && needed == 0) buf[0] = '\0';
    return needed;
}

/* ---------- string buffer ---------- */

void klay_sb_append(klay_strbuf *sb, const char *text, size_t len)
{
    if (sb->failed) return;
    if (sb->len + len + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 32;
        while (cap < sb->len + len + 1) cap *= 2;
        char *data = realloc(sb->data, cap);
        if (!data) {
            sb->failed = 1;
            return;
        }
        sb->data = data;
        sb->cap = cap;
    }
    memcpy(sb->data + sb->len, text, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
}

void klay_sb_puts(klay_strbuf *sb, const char *text) { klay_sb_append(sb, text, strlen(text)); }

void klay_sb_printf(klay_strbuf *sb, const char *fmt, ...)
{
    char small[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof small) {
        klay_sb_append(sb, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        sb->failed = 1;
        return;
    }
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    klay_sb_append(sb, big, (size_t)n);
    free(big);
}

char *klay_sb_take(klay_strbuf *sb)
{
    char *text = sb->data;
    if (sb->failed) {
        free(text);
        text = NULL;
    } else if (!text) {
        text = klay_strndup("", 0);
    }
    sb->data = NULL;
    sb->len = sb->cap = 0;
    sb->failed = 0;
    return text;
}

/* ---------- hash map ---------- */

static size_t hash_bytes(const char *key, size_t len)
{
    size_t h = 1469598103934665603u; /* FNV-1a */
    for (size_t i = 0; i < len; ++i) h = (h ^ (unsigned char)key[i]) * 1099511628211u;
    return h;
}

static klay_strmap_slot *find_slot(klay_strmap_slot *slots, size_t cap, const char *key, size_t len)
{
    size_t i = hash_bytes(key, len) & (cap - 1);
    while (slots[i].key && !(slots[i].len == len && memcmp(slots[i].key, key, len) == 0))
        i = (i + 1) & (cap - 1);
    return &slots[i];
}

int klay_strmap_put(klay_strmap *m, const char *key, size_t len, int value)
{
    if (2 * (m->count + 1) > m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 16;
        klay_strmap_slot *slots = calloc(cap, sizeof *slots);
        if (!slots) return -1;
        for (size_t i = 0; i < m->cap; ++i)
            if (m->slots[i].key) *find_slot(slots, cap, m->slots[i].key, m->slots[i].len) = m->slots[i];
        free(m->slots);
        m->slots = slots;
        m->cap = cap;
    }
    klay_strmap_slot *slot = find_slot(m->slots, m->cap, key, len);
    if (slot->key) return 1;
    slot->key = key;
    slot->len = len;
    slot->value = value;
    ++m->count;
    return 0;
}

int klay_strmap_get(const klay_strmap *m, const char *key, size_t len)
{
    if (!m->cap) return -1;
    const klay_strmap_slot *slot = find_slot(m->slots, m->cap, key, len);
    return slot->key ? slot->value : -1;
}

void klay_strmap_free(klay_strmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->count = m->cap = 0;
}
