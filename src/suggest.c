/* "Did you mean": the closest of some names to a word that is none of them. */
#include "klay_suggest.h"

#include <ctype.h>
#include <string.h>

static int same_letter(char a, char b)
{
    return tolower((unsigned char)a) == tolower((unsigned char)b);
}

/* Optimal-string-alignment distance (Levenshtein plus adjacent transpositions, so "rleu" is one
 * edit from "relu"), letters compared without case ("ReLU" is "relu"), abandoning once it exceeds
 * `limit`; names are short. */
static size_t edit_distance(const char *a, const char *b, size_t limit)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return limit + 1;
    if ((la > lb ? la - lb : lb - la) > limit) return limit + 1;
    size_t rows[3][65], *before = rows[0], *prev = rows[1], *row = rows[2];
    for (size_t j = 0; j <= lb; ++j) prev[j] = j;
    for (size_t i = 1; i <= la; ++i) {
        size_t best = row[0] = i;
        for (size_t j = 1; j <= lb; ++j) {
            size_t d = prev[j - 1] + !same_letter(a[i - 1], b[j - 1]);
            if (prev[j] + 1 < d) d = prev[j] + 1;
            if (row[j - 1] + 1 < d) d = row[j - 1] + 1;
            if (i > 1 && j > 1 && same_letter(a[i - 1], b[j - 2]) && same_letter(a[i - 2], b[j - 1]) &&
                before[j - 2] + 1 < d)
                d = before[j - 2] + 1;
            row[j] = d;
            if (d < best) best = d;
        }
        if (best > limit) return limit + 1;
        size_t *t = before;
        before = prev;
        prev = row;
        row = t;
    }
    return prev[lb];
}

const char *klay_closest_name(const char *word, const char *const *candidates, size_t n)
{
    size_t len = strlen(word);
    /* A third of the word (at least 2 edits) is what separates a typo from a different name. */
    size_t limit = (len + 2) / 3;
    if (limit < 2) limit = 2;
    const char *best = NULL;
    size_t best_distance = limit + 1;
    for (size_t i = 0; n == KLAY_UNCOUNTED ? candidates[i] != NULL : i < n; ++i) {
        if (!candidates[i]) continue;
        size_t dist = edit_distance(word, candidates[i], limit);
        if (dist < best_distance) {
            best_distance = dist;
            best = candidates[i];
        }
    }
    return best;
}
