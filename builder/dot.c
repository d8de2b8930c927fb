/* Graphviz rendering of a plan: model inputs (ellipses), layer calls (boxes; an alias is a second
 * call-site of its target, drawn with a dashed "shares module" edge to it), model outputs
 * (double octagons). Edges carry the port name and, for `output:` aliases, the selected key. */
#include "internal.h"

#include <stdio.h>

/* Text inside a double-quoted DOT string. */
static void escaped(FILE *out, const char *text)
{
    for (; text && *text; ++text) {
        if (*text == '"' || *text == '\\') fputc('\\', out);
        if (*text == '\n') fputs("\\n", out);
        else fputc(*text, out);
    }
}

static void quoted(FILE *out, const char *text)
{
    fputc('"', out);
    escaped(out, text);
    fputc('"', out);
}

static void source_id(FILE *out, const klay_source *s)
{
    if (s->kind == KLAY_SRC_INPUT) fprintf(out, "in%d", s->index);
    else fprintf(out, "n%d", s->index);
}

static void source_item_label(FILE *out, const klay_source *s)
{
    if (s->kind != KLAY_SRC_ITEM) return;
    if (s->key_is_int) fprintf(out, "[%lld]", (long long)s->key_int);
    else {
        fputc('[', out);
        escaped(out, s->key_str);
        fputc(']', out);
    }
}

int klay_plan_write_dot(const klay_plan *plan, const char *path)
{
    FILE *out = fopen(path, "w");
    if (!out) return -1;
    fputs("digraph klay_model {\n  rankdir=TB;\n  node [fontname=\"Helvetica\"];\n", out);
    for (size_t i = 0; i < plan->n_inputs; ++i) {
        fprintf(out, "  in%zu [shape=ellipse, label=", i);
        quoted(out, plan->inputs[i]);
        fputs("];\n", out);
    }
    for (size_t i = 0; i < plan->n_nodes; ++i) {
        const klay_plan_node *node = &plan->nodes[i];
        char label[512];
        if (node->alias_of >= 0)
            snprintf(label, sizeof label, "%s\nalias of %s (%s)", node->name, plan->nodes[node->alias_of].name,
                     node->type);
        else
            snprintf(label, sizeof label, "%s\n%s", node->name, node->type);
        fprintf(out, "  n%zu [shape=box, %slabel=", i,
                node->alias_of >= 0 ? "style=\"rounded,dashed\", " : node->spec->aggregation ? "style=bold, " : "");
        quoted(out, label);
        fputs("];\n", out);
        if (node->alias_of >= 0)
            fprintf(out, "  n%zu -> n%d [style=dashed, arrowhead=none, constraint=false, label=\"shares module\"];\n", i,
                    node->alias_of);
        for (size_t k = 0; k < node->n_bindings; ++k) {
            const klay_binding *b = &node->bindings[k];
            fputs("  ", out);
            source_id(out, &b->source);
            fprintf(out, " -> n%zu [label=\"", i);
            source_item_label(out, &b->source);
            if (b->source.kind == KLAY_SRC_ITEM) fputc(' ', out);
            if (b->keyword) escaped(out, b->keyword);
            else fprintf(out, "%lld", (long long)b->position);
            fputs("\"];\n", out);
        }
    }
    for (size_t o = 0; o < plan->n_outputs; ++o) {
        const klay_model_output *output = &plan->outputs[o];
        fprintf(out, "  out%zu [shape=doubleoctagon, label=", o);
        quoted(out, output->name);
        fputs("];\n  ", out);
        source_id(out, &output->source);
        fprintf(out, " -> out%zu [label=\"", o);
        source_item_label(out, &output->source);
        if (output->tail) {
            fputs("['", out);
            escaped(out, output->tail);
            fputs("']", out);
        }
        fputs("\"];\n", out);
    }
    fputs("}\n", out);
    return fclose(out) == 0 ? 0 : -1;
}
