/* The one "did you mean" of every message: the YAML front end's (builder/) and the runtime's
 * (klay::closest_match in src/base/) suggest alike. Plain C, no dependencies. */
#ifndef KLAY_SUGGEST_H
#define KLAY_SUGGEST_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The candidate closest to `word` by edit distance (an adjacent transposition is one edit; case
 * is ignored) when it is close enough to be a plausible typo, else NULL. `candidates` has n
 * entries (NULL entries skipped), or is NULL-terminated when n is KLAY_UNCOUNTED. */
#define KLAY_UNCOUNTED ((size_t)-1)
const char *klay_closest_name(const char *word, const char *const *candidates, size_t n);

#ifdef __cplusplus
}
#endif

#endif
