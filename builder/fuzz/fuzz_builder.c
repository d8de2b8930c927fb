/* libFuzzer target for the YAML front end: load (typing, anchors, merges, interpolation), validate
 * and plan, render diagnostics and the plan's dot graph, and convert every irreps-looking list.
 * Any crash, sanitizer report or leak is a bug. Build: -DKLAY_FUZZ=ON -DKLAY_SANITIZE=ON, CC=clang
 * (scripts/fuzz_builder.sh does it and seeds the corpus with the conformance YAMLs). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "klay_builder.h"
#include "klay_layer_table.h"

/* Feeds every list below `node` to the irreps helper: most are not irreps, which is the point. */
static void convert_lists(const klay_node *node, klay_diags *diags, int depth)
{
    if (depth > 8) return;
    if (node->kind == KLAY_SEQ) {
        char text[64];
        klay_irreps_blocks_to_string(node, text, sizeof text, diags);
    }
    for (size_t i = 0; i < node->len; ++i) convert_lists(node->items[i], diags, depth + 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    klay_diags diags;
    klay_diags_init(&diags);
    klay_doc *doc = klay_doc_load_string((const char *)data, size, "fuzz.yaml", &diags);
    if (doc) {
        convert_lists(klay_doc_root(doc), &diags, 0);
        unsigned flags = size ? data[0] % 4 : 0;
        klay_plan *plan = klay_plan_build(doc, klay_layer_table_get(), flags, &diags);
        if (plan) klay_plan_write_dot(plan, "/dev/null");
        klay_plan_free(plan);
        klay_doc_free(doc);
    }
    size_t needed = klay_diags_format(&diags, NULL, 0);
    char *text = malloc(needed + 1);
    if (text) klay_diags_format(&diags, text, needed + 1);
    free(text);
    klay_diags_free(&diags);
    return 0;
}
