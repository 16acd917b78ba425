/*
 * The dead-letter output: one JSON object per rejected line holding the
 * original bytes and the reason,
 *   {"error":"not JSON: ...",...context...,"line":"<the line>"}
 * with "line_base64" instead of "line" when the bytes are not valid UTF-8,
 * and "truncated":true before it when the record keeps only the line's start.
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

/*
 * Keep at most max bytes of a line in a record (0, the default: all of it);
 * a longer line keeps its start, cut back to a character boundary, and its
 * record says "truncated":true.
 */
void dlq_set_limit(struct dlq *d, size_t max);

/* One record; context is pre-rendered JSON members (",\"offset\":5") or NULL. */
int dlq_write(struct dlq *d, const char *line, size_t len, const char *error, const char *context);

/*
 * The record of input line n (from 1): its number, where it came from
 * (its table, key and pos as it holds them, at most 1 KiB of key; unless cut: the stage kept only its start, said as
 * "truncated":true), then as dlq_write.
 */
int dlq_write_input(struct dlq *d, const char *line, size_t len, const char *error,
    unsigned long long n, int cut);

/* Flush; -1 (logged) on a write error.  Records count as written only after this. */
int dlq_flush(struct dlq *d);

/*
 * After SIGHUP (sig_reopen), open the file again by name, for logrotate: a
 * file moved away is followed by a new one.  When it cannot be opened the old
 * one is kept (logged).  Nothing for stderr.
 */
void dlq_reopen_if_asked(struct dlq *d);

int dlq_close(struct dlq *d);

/*
 * The original line a dead-letter record rec[0..len) holds ("line", or
 * "line_base64" decoded), into *buf of *cap bytes, grown as needed: its
 * length, or -1 with *why when rec is no record or keeps only the start of
 * its line ("truncated").
 */
long dlq_original(const char *rec, size_t len, char **buf, size_t *cap, const char **why);

/* Records written so far. */
unsigned long long dlq_count(const struct dlq *d);

#endif
