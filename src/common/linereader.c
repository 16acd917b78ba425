#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linereader.h"

struct linereader {
	int fd;
	int eof;
	int skipping;		/* dropping the rest of an over-long line */
	int unterminated;	/* the last line handed out ended at end of input, not at a newline */
	size_t max;
	char *buf;
	size_t cap, start, end;	/* unread bytes are buf[start..end) */
};

struct linereader *
lr_open(int fd, size_t max)
{
	struct linereader *lr = calloc(1, sizeof *lr);

	if (lr == NULL)
		return NULL;
	lr->fd = fd;
	lr->max = max;
	lr->cap = max + 1 < 1 << 16 ? max + 1 : 1 << 16;
	if ((lr->buf = malloc(lr->cap)) == NULL) {
		free(lr);
		return NULL;
	}
	return lr;
}

void
lr_close(struct linereader *lr)
{
	if (lr) {
		free(lr->buf);
		free(lr);
	}
}

/* Make room for at least one more byte after end, within max + 1 bytes of line. */
static int
make_room(struct linereader *lr)
{
	size_t need, cap;
	char *nb;

	if (lr->start > 0) {
		memmove(lr->buf, lr->buf + lr->start, lr->end - lr->start);
		lr->end -= lr->start;
		lr->start = 0;
	}
	if (lr->end < lr->cap)
		return 0;
	need = lr->end + 1;
	if (need > lr->max + 1)
		return -1;	/* a full line of max bytes without a newline */
	cap = lr->cap * 2 > lr->max + 1 ? lr->max + 1 : lr->cap * 2;
	if ((nb = realloc(lr->buf, cap)) == NULL)
		return -1;
	lr->buf = nb;
	lr->cap = cap;
	return 0;
}

long
lr_fill(struct linereader *lr)
{
	ssize_t n;

	if (lr->eof)
		return 0;
	if (make_room(lr) < 0) {
		errno = ENOMEM;
		return -1;
	}
	n = read(lr->fd, lr->buf + lr->end, lr->cap - lr->end);
	if (n == 0)
		lr->eof = 1;
	if (n > 0)
		lr->end += n;
	return n;
}

int
lr_next(struct linereader *lr, const char **line, size_t *len, int *truncated)
{
	char *nl;
	size_t avail;

	for (;;) {
		avail = lr->end - lr->start;
		nl = memchr(lr->buf + lr->start, '\n', avail);
		if (lr->skipping) {
			/* discard up to the end of the over-long line, or of input */
			if (nl == NULL) {
				lr->start = lr->end = 0;
				lr->skipping = !lr->eof;
				return 0;
			}
			lr->start = nl + 1 - lr->buf;
			lr->skipping = 0;
			continue;
		}
		if (nl != NULL && (size_t)(nl - (lr->buf + lr->start)) <= lr->max) {
			*line = lr->buf + lr->start;
			*len = nl - (lr->buf + lr->start);
			*truncated = 0;
			lr->start = nl + 1 - lr->buf;
			return 1;
		}
		if (avail > lr->max || (nl != NULL)) {
			/* over-long: hand out max bytes now, skip the rest */
			*line = lr->buf + lr->start;
			*len = lr->max;
			*truncated = 1;
			if (nl != NULL) {
				lr->start = nl + 1 - lr->buf;
			} else {
				lr->start = lr->end = 0;
				lr->skipping = 1;
			}
			return 1;
		}
		if (lr->eof && avail > 0) {
			*line = lr->buf + lr->start;
			*len = avail;
			*truncated = 0;
			lr->start = lr->end;
			lr->unterminated = 1;
			return 1;
		}
		return 0;
	}
}

int
lr_done(const struct linereader *lr)
{
	return lr->eof && lr->start == lr->end && !lr->skipping;
}

int
lr_unterminated(const struct linereader *lr)
{
	return lr->unterminated;
}
