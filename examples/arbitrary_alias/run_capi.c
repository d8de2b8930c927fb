/* Runs a KLay model from C through klay.h and prints its outputs as JSON (the format of
 * `klay run`): run_capi MODEL.yaml WEIGHTS INPUTS.json
 *
 * INPUTS.json is read with a deliberately small reader that covers this example: for each model
 * input `name` it takes the first "name": {"dtype": "float64", "shape": [...], "data": [...]}
 * object; every number inside "data" is one element, row-major. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "klay.h"

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *text = malloc((size_t)size + 1);
    if (text && fread(text, 1, (size_t)size, f) == (size_t)size) {
        text[size] = '\0';
    } else {
        free(text);
        text = NULL;
    }
    fclose(f);
    return text;
}

/* The numbers of the JSON array starting at *p (nested arrays flattened); NULL if malformed. */
static double *read_numbers(const char *p, size_t expected)
{
    double *values = malloc((expected ? expected : 1) * sizeof *values);
    size_t count = 0;
    int depth = 0;
    do {
        if (*p == '[') {
            ++depth, ++p;
        } else if (*p == ']') {
            --depth, ++p;
        } else if (*p == ',' || *p == ' ' || *p == '\n' || *p == '\r' || *p == '\t') {
            ++p;
        } else {
            char *end;
            double v = strtod(p, &end);
            if (end == p || count == expected) break;
            values[count++] = v;
            p = end;
        }
    } while (depth > 0 && *p);
    if (depth != 0 || count != expected) {
        free(values);
        return NULL;
    }
    return values;
}

/* Fills *t from the object of input `name`; returns 0, or -1 with a message on stderr. */
static int read_input(const char *json, const char *name, klay_tensor *t)
{
    char key[256];
    snprintf(key, sizeof key, "\"%s\":", name);
    const char *object = strstr(json, key);
    const char *shape = object ? strstr(object, "\"shape\":") : NULL;
    const char *data = object ? strstr(object, "\"data\":") : NULL;
    if (!shape || !data || !strstr(object, "\"float64\"")) {
        fprintf(stderr, "input '%s': no float64 {\"shape\", \"data\"} object in the inputs file\n", name);
        return -1;
    }
    memset(t, 0, sizeof *t);
    t->name = name;
    t->dtype = KLAY_TENSOR_FLOAT64;
    size_t numel = 1;
    const char *p = strchr(shape, '[') + 1;
    while (*p != ']' && t->ndim < KLAY_TENSOR_MAX_DIMS) {
        char *end;
        t->shape[t->ndim] = strtoll(p, &end, 10);
        if (end == p) break;
        numel *= (size_t)t->shape[t->ndim++];
        p = end + strspn(end, ", ");
    }
    t->data = read_numbers(strchr(data, '['), numel);
    if (!t->data) fprintf(stderr, "input '%s': data does not have %zu numbers\n", name, numel);
    return t->data ? 0 : -1;
}

static void print_tensor(const klay_tensor *t)
{
    static const char *dtype_names[] = {"float64", "float32", "int64"};
    size_t numel = 1;
    printf("  \"%s\": {\"dtype\": \"%s\", \"shape\": [", t->name, dtype_names[t->dtype]);
    for (int d = 0; d < t->ndim; ++d) {
        printf(d ? ", %lld" : "%lld", (long long)t->shape[d]);
        numel *= (size_t)t->shape[d];
    }
    printf("], \"data\": [");
    for (size_t i = 0; i < numel; ++i) {
        if (i) printf(", ");
        if (t->dtype == KLAY_TENSOR_FLOAT64) printf("%.17g", ((const double *)t->data)[i]);
        else if (t->dtype == KLAY_TENSOR_FLOAT32) printf("%.9g", ((const float *)t->data)[i]);
        else printf("%lld", (long long)((const int64_t *)t->data)[i]);
    }
    printf("]}");
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: run_capi MODEL.yaml WEIGHTS INPUTS.json\n");
        return 2;
    }
    char err[1024];
    klay_model *model = klay_model_load_graph(argv[1], argv[2], NULL, err, sizeof err);
    if (!model) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    char *json = read_file(argv[3]);
    if (!json) {
        fprintf(stderr, "cannot read %s\n", argv[3]);
        klay_model_free(model);
        return 1;
    }

    const size_t n_inputs = klay_model_num_inputs(model);
    klay_tensor *inputs = calloc(n_inputs, sizeof *inputs);
    int status = 0;
    for (size_t i = 0; i < n_inputs && status == 0; ++i)
        status = read_input(json, klay_model_input_name(model, i), &inputs[i]);

    klay_outputs *outputs = NULL;
    if (status == 0 && klay_model_run(model, inputs, n_inputs, &outputs, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        status = -1;
    }
    if (status == 0) {
        printf("{\"outputs\": {\n");
        for (size_t k = 0; k < klay_outputs_count(outputs); ++k) {
            if (k) printf(",\n");
            print_tensor(klay_outputs_get(outputs, k));
        }
        printf("\n}}\n");
    }

    klay_outputs_free(outputs);
    for (size_t i = 0; i < n_inputs; ++i) free((void *)inputs[i].data);
    free(inputs);
    free(json);
    klay_model_free(model);
    return status == 0 ? 0 : 1;
}
