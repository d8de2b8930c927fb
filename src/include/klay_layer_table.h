/* The registered KLay layer types and their ports, as a torch-free C table (src/layer_table.c). */
#ifndef KLAY_LAYER_TABLE_H
#define KLAY_LAYER_TABLE_H
#include "klay_builder.h"
#ifdef __cplusplus
extern "C" {
#endif
const klay_layer_table *klay_layer_table_get(void);
const klay_layer_spec *klay_layer_table_find(const klay_layer_table *table, const char *name);
#ifdef __cplusplus
}
#endif
#endif
