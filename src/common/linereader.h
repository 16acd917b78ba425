/*
 * Reading newline-terminated lines from a descriptor that may be polled:
 * lr_fill() does one read(), lr_next() hands out the complete lines already
 * buffered.  Memory is bounded by the longest allowed line.
 */
#ifndef PGCDC_LINEREADER_H
#define PGCDC_LINEREADER_H

#include <stddef.h>

struct linereader;

/* Lines longer than max bytes are cut to max and flagged as truncated. */
struct linereader *lr_open(int fd, size_t max);
void lr_close(struct linereader *lr);

/* One read(): bytes read, 0 at end of input, -1 on error (errno set; EAGAIN/EINTR harmless). */
long lr_fill(struct linereader *lr);

/*
 * The next buffered line, without its newline: 1 and *line, *len (valid until
 * the next lr_fill: the lines of one fill can be used together), or 0 when no
 * complete line is buffered.  After end of input
 * a final line without a newline is returned too.  *truncated is set when the
 * line was longer than max (the rest of it is dropped).
 */
int lr_next(struct linereader *lr, const char **line, size_t *len, int *truncated);

/* True once end of input was read and every line handed out. */
int lr_done(const struct linereader *lr);

/*
 * True when the line lr_next last handed out ended at end of input without a
 * newline: possibly the start of a line its writer did not finish.
 */
int lr_unterminated(const struct linereader *lr);

#endif
