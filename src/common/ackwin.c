#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ackfile.h"
#include "ackwatch.h"
#include "ackwin.h"
#include "clock.h"
#include "log.h"
#include "sig.h"

struct ackwin {
	const char *path;	/* NULL without --ack */
	int lockfd, watchfd;
	unsigned char *ring;	/* marks: a line, then the payload */
	size_t stride, size;
	size_t cap, max, head, len;
	uint64_t acked;
	uint64_t last;		/* the last count read */
	int peer_seen;		/* the downstream's lock was held once */
	int failed;		/* a count was refused: nothing pops any more */
};

/* Marks are aligned for any payload of pointers and 64-bit numbers. */
#define ALIGN 8

struct ackwin *
ackwin_open(const char *path, size_t size, size_t max)
{
	struct ackwin *w = calloc(1, sizeof *w);

	if (w == NULL)
		die("out of memory");
	w->path = path;
	w->size = size;
	w->stride = sizeof(uint64_t) + (size + ALIGN - 1) / ALIGN * ALIGN;
	w->max = max;
	w->lockfd = w->watchfd = -1;
	if (path == NULL)
		return w;
	if ((w->lockfd = ack_claim(path, ACK_UPSTREAM)) < 0) {
		ackwin_free(w, NULL, NULL);
		return NULL;
	}
	if ((w->watchfd = ackwatch_open(path)) < 0) {
		log_error("cannot watch ack file \"%s\":", path);
		ackwin_free(w, NULL, NULL);
		return NULL;
	}
	return w;
}

static unsigned char *
slot(const struct ackwin *w, size_t i)
{
	return w->ring + (w->head + i) % w->cap * w->stride;
}

void
ackwin_free(struct ackwin *w, ackwin_pop_fn *clear, void *ctx)
{
	size_t i;

	if (w == NULL)
		return;
	for (i = 0; clear && i < w->len; i++)
		clear(ctx, slot(w, i) + sizeof(uint64_t));
	if (w->watchfd >= 0)
		close(w->watchfd);
	if (w->lockfd >= 0)
		close(w->lockfd);
	free(w->ring);
	free(w);
}

int
ackwin_fd(const struct ackwin *w)
{
	return w->watchfd;
}

size_t
ackwin_len(const struct ackwin *w)
{
	return w->len;
}

uint64_t
ackwin_acked(const struct ackwin *w)
{
	return w->acked;
}

/* Double the ring (up to max), the marks in order from its start. */
static void
grow(struct ackwin *w)
{
	size_t cap = w->cap ? 2 * w->cap : 64, i;
	unsigned char *ring;

	if (w->cap == w->max)
		die("window of unacknowledged lines overflowed");
	if (cap > w->max)
		cap = w->max;
	if ((ring = calloc(cap, w->stride)) == NULL)
		die("out of memory");
	for (i = 0; i < w->len; i++)
		memcpy(ring + i * w->stride, slot(w, i), w->stride);
	free(w->ring);
	w->ring = ring;
	w->cap = cap;
	w->head = 0;
}

void *
ackwin_push(struct ackwin *w, uint64_t line)
{
	unsigned char *m;

	if (w->len == w->cap)
		grow(w);
	m = slot(w, w->len++);
	memcpy(m, &line, sizeof line);
	return m + sizeof line;
}

void *
ackwin_newer(struct ackwin *w, size_t i, uint64_t *line)
{
	unsigned char *m;

	if (i >= w->len)
		return NULL;
	m = slot(w, w->len - 1 - i);
	memcpy(line, m, sizeof *line);
	return m + sizeof *line;
}

/* Pop the marks up to line n, zeroing each slot for its next use. */
static void
pop_to(struct ackwin *w, uint64_t n, ackwin_pop_fn *pop, void *ctx)
{
	unsigned char *m;
	uint64_t line;

	while (w->len > 0) {
		m = slot(w, 0);
		memcpy(&line, m, sizeof line);
		if (line > n)
			break;
		pop(ctx, m + sizeof line);
		memset(m, 0, w->stride);
		w->head = (w->head + 1) % w->cap;
		w->len--;
	}
}

/* A count from another writer: say so, once, and trust the file no more. */
static int
refuse(struct ackwin *w, const char *why)
{
	log_error("ack file \"%s\" is refused (%s): only this pipeline's downstream may write it;"
	    " no position is advanced by it", w->path, why);
	w->failed = 1;
	return -1;
}

/* The count in the file, checked against what was written and read before. */
static int
read_count(struct ackwin *w, uint64_t written, uint64_t *n)
{
	char why[160];
	const char *bad;

	if ((bad = ack_read(w->path, n)) != NULL)
		return refuse(w, bad);
	if (*n > written) {
		snprintf(why, sizeof why, "it says %" PRIu64 " lines, but only %" PRIu64 " were written",
		    *n, written);
		return refuse(w, why);
	}
	/* the downstream only counts up: it wrote 0 before its first line */
	if (*n < w->last) {
		snprintf(why, sizeof why, "it went down from %" PRIu64 " to %" PRIu64 " lines", w->last, *n);
		return refuse(w, why);
	}
	w->last = *n;
	return 0;
}

int
ackwin_update(struct ackwin *w, uint64_t written, ackwin_pop_fn *pop, void *ctx)
{
	uint64_t n = written;

	if (w->failed)
		return -1;
	if (w->path) {
		if (!w->peer_seen)
			w->peer_seen = ack_role_held(w->lockfd, ACK_DOWNSTREAM) == 1;
		if (read_count(w, written, &n) < 0)
			return -1;
	}
	w->acked = n;
	pop_to(w, n, pop, ctx);
	return 0;
}

int
ackwin_wait(struct ackwin *w, uint64_t written, double timeout_ms,
    ackwin_pop_fn *pop, void *ctx, int (*tick)(void *ctx))
{
	double start = mono_ms();
	int gone;

	if (ackwin_update(w, written, pop, ctx) < 0)
		return -1;
	while (w->path && w->acked < written && mono_ms() - start < timeout_ms && sig_count < 2) {
		/* a downstream that has exited wrote its last count before: read it once more */
		gone = w->peer_seen && ack_role_held(w->lockfd, ACK_DOWNSTREAM) == 0;
		if (!gone && poll(&(struct pollfd){ w->watchfd, POLLIN, 0 }, 1, 100) > 0)
			ackwatch_drain(w->watchfd);
		if (ackwin_update(w, written, pop, ctx) < 0)
			return -1;
		if (gone)
			break;
		if (tick && tick(ctx) < 0)
			return -1;
	}
	return 0;
}
