/*
 * The dead-letter output: one JSON object per rejected line holding the
 * original bytes and the reason,
 *   {"error":"not JSON: ...",...context...,"line":"<the line>"}
 * with "line_base64" instead of "line" when the bytes are not valid UTF-8.
 */
#ifndef PGCDC_DLQ_H
#define PGCDC_DLQ_H

#include <stddef.h>

struct dlq;

/*
 * Append to path (opened by open_private_append: 0600, no symbolic link, a
 * directory only the user or root may write), or write to stderr when path
 * is NULL; NULL (logged) on error.
 */
struct dlq *dlq_open(const char *path);

/* One record; context is pre-rendered JSON members (",\"offset\":5") or NULL. */
int dlq_write(struct dlq *d, const char *line, size_t len, const char *error, const char *context);

/* Flush; -1 (logged) on a write error.  Records count as written only after this. */
int dlq_flush(struct dlq *d);

int dlq_close(struct dlq *d);

/* Records written so far. */
unsigned long long dlq_count(const struct dlq *d);

#endif
