/*
 * The window of lines written but not yet acknowledged downstream.  Each
 * line, and each finished batch, leaves a mark: "after line N, table T's
 * position is P".  When the ack file says N lines are durable, the last mark
 * at or below N of each table is that table's durable position.
 */
#include <stdlib.h>

#include "log.h"
#include "tail.h"

struct mark {
	uint64_t line;
	int table;
	struct pos pos;
};

struct window {
	struct mark *ring;
	size_t cap, head, len;
};

struct window *
window_new(size_t cap)
{
	struct window *w = calloc(1, sizeof *w);

	if (w == NULL || (w->ring = calloc(cap, sizeof *w->ring)) == NULL)
		die("out of memory");
	w->cap = cap;
	return w;
}

void
window_free(struct window *w)
{
	size_t i;

	if (w == NULL)
		return;
	for (i = 0; i < w->cap; i++)
		pos_clear(&w->ring[i].pos);
	free(w->ring);
	free(w);
}

size_t
window_len(const struct window *w)
{
	return w->len;
}

int
window_full(const struct window *w)
{
	return w->len == w->cap;
}

static struct mark *
at(struct window *w, size_t i)
{
	return &w->ring[(w->head + i) % w->cap];
}

void
window_push(struct window *w, uint64_t line, int table, const struct pos *p)
{
	size_t i;
	struct mark *m;

	/* a later mark of the same table at the same line replaces the earlier */
	for (i = w->len; i > 0 && at(w, i - 1)->line == line; i--) {
		m = at(w, i - 1);
		if (m->table == table) {
			pos_set(&m->pos, p);
			return;
		}
	}
	if (window_full(w))
		die("window of unacknowledged lines overflowed");
	m = at(w, w->len++);
	m->line = line;
	m->table = table;
	pos_set(&m->pos, p);
}

void
window_pop(struct window *w, uint64_t n, struct pos *out, int *moved)
{
	struct mark *m;

	while (w->len > 0 && (m = at(w, 0))->line <= n) {
		pos_set(&out[m->table], &m->pos);
		moved[m->table] = 1;
		pos_clear(&m->pos);
		w->head = (w->head + 1) % w->cap;
		w->len--;
	}
}
