/*
 * Trigger mode's marks in the ack window (src/common/ackwin.c): "after line
 * N, table T's position is P".  When the ack file says N lines are durable,
 * the last mark at or below N of each table is that table's durable position.
 */
#include <string.h>

#include "ackwin.h"
#include "log.h"
#include "tail.h"

struct mark {
	int table;
	struct pos pos;		/* holds references to its snapshots */
};

/* Where popped marks go: per table, the durable position and whether it moved. */
struct popped {
	struct pos *out;
	int *moved;
	int (*tick)(void *ctx);	/* window_wait's, with its argument */
	void *ctx;
};

struct ackwin *
window_new(const char *ack, size_t cap)
{
	return ackwin_open(ack, sizeof(struct mark), cap);
}

static void
clear_mark(void *ctx, void *payload)
{
	(void)ctx;
	pos_clear(&((struct mark *)payload)->pos);
}

void
window_free(struct ackwin *w)
{
	ackwin_free(w, clear_mark, NULL);
}

void
window_push(struct ackwin *w, uint64_t line, int table, const struct pos *p)
{
	struct mark *m;
	uint64_t at;
	size_t i;

	/* a later mark of the same table at the same line replaces the earlier */
	for (i = 0; (m = ackwin_newer(w, i, &at)) != NULL && at == line; i++) {
		if (m->table == table) {
			pos_set(&m->pos, p);
			return;
		}
	}
	m = ackwin_push(w, line);
	m->table = table;
	pos_set(&m->pos, p);
}

static void
pop_mark(void *ctx, void *payload)
{
	struct popped *to = ctx;
	struct mark *m = payload;

	/* the mark's references move to out; ackwin zeroes the slot */
	pos_clear(&to->out[m->table]);
	to->out[m->table] = m->pos;
	to->moved[m->table] = 1;
}

int
window_update(struct ackwin *w, uint64_t written, struct pos *out, int *moved)
{
	struct popped to = { out, moved, NULL, NULL };

	return ackwin_update(w, written, pop_mark, &to);
}

static int
tick(void *ctx)
{
	struct popped *to = ctx;

	return to->tick(to->ctx);
}

int
window_wait(struct ackwin *w, uint64_t written, double timeout_ms, struct pos *out, int *moved,
    int (*tick_fn)(void *ctx), void *ctx)
{
	struct popped to = { out, moved, tick_fn, ctx };

	return ackwin_wait(w, written, timeout_ms, pop_mark, &to, tick);
}
