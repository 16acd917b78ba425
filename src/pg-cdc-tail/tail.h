/* pg-cdc-tail: emit committed changes of captured tables as CDC events. */
#ifndef PG_CDC_TAIL_H
#define PG_CDC_TAIL_H

#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>

struct options {
	const char *conninfo;
	const char **tables;
	int ntables;
	const char *name;		/* consumer name */
	const char *ack;		/* ack file, or NULL */
	int follow;
	int snapshot;
	int prune;
	long long poll_ms;
	long long batch;
	long long window;
	long long ack_timeout_ms;
	/* logical mode */
	int logical;
	const char *slot;
	const char *publication;
	int create_slot;
	int drop_slot;
};

/* A transaction snapshot ("xmin:xmax:xip,..."), shared by the lines emitted under it. */
struct snap {
	int refs;
	uint64_t xmin, xmax;
	char text[];
};

struct snap *snap_new(const char *text);
struct snap *snap_ref(struct snap *s);
void snap_unref(struct snap *s);

/*
 * A position in one table's log: every transaction visible in lo is
 * delivered, and of those visible in hi but not lo (a batch), every log row
 * up to id last.  hi is NULL between batches; lo is NULL before the first.
 */
struct pos {
	struct snap *lo, *hi;
	int64_t last;
};

void pos_set(struct pos *dst, const struct pos *src);
void pos_clear(struct pos *p);
int pos_equal(const struct pos *a, const struct pos *b);

struct table {
	char *name;		/* schema.table, as emitted in events */
	char *regclass;		/* its oid, for queries */
	char *page_sql;		/* one page of a batch */
	char *snapshot_sql;	/* the table's rows with their keys */
	char *prefix;		/* ,"table":"...","key": */
	struct pos cur;		/* what has been written out */
	struct pos stored;	/* what the database holds */
	int has_stored;		/* the consumer row exists */
	int done;		/* without -f: the batch taken at start is drained */
	int final_batch;	/* the batch in progress started after this run began */
};

/* window.c: trigger mode's marks (table, position) in the ack window of src/common/ackwin.h. */
struct ackwin;

/* Claim ack file ack and watch it, for at most cap marks; NULL after an error message. */
struct ackwin *window_new(const char *ack, size_t cap);
void window_free(struct ackwin *w);
void window_push(struct ackwin *w, uint64_t line, int table, const struct pos *p);
/* Pop the marks acknowledged; for each table, the last popped position goes to out[table]. */
int window_update(struct ackwin *w, uint64_t written, struct pos *out, int *moved);
/* The exit wait of ackwin_wait, calling tick(ctx) between reads. */
int window_wait(struct ackwin *w, uint64_t written, double timeout_ms, struct pos *out, int *moved,
    int (*tick)(void *ctx), void *ctx);

/* trigger.c */
int tables_resolve(PGconn *conn, struct table *t, const char *name);
void table_free(struct table *t);
int position_load(PGconn *conn, const char *consumer, struct table *t);
int position_store(PGconn *conn, const char *consumer, struct table *t, const struct pos *p);
int prune_log(PGconn *conn, struct table *t);
/* Try the consumer's session lock: 1 taken, 0 held by server process *pid, -1 on error. */
int consumer_lock(PGconn *conn, const char *consumer, long *pid);
/* The current snapshot's text; *unflushed says whether WAL is not all on disk yet. */
char *current_snapshot(PGconn *conn, int *unflushed);
/* ,"table":"schema.table","key": as every event of that table has it */
char *event_prefix(const char *name);
int flush_wal(PGconn *conn);

/* Write one page of t's batch; returns rows written or -1. */
struct emitter {
	FILE *out;
	struct ackwin *win;	/* NULL without --ack (trigger mode) */
	int index;		/* table index, for window marks */
	uint64_t lines;		/* lines written so far */
	/* How many more lines may be written now; waits while none may, 0 to give up. */
	long (*room)(struct emitter *e);
};
long emit_page(PGconn *conn, struct table *t, struct emitter *e, long limit);
long emit_snapshot(PGconn *conn, struct table *t, struct emitter *e, long batch,
    const char *import, struct snap **taken);

/* main.c: at exit, lines not acknowledged come again: an error unless a signal stopped us */
int report_unacked(uint64_t acked, uint64_t lines);

/* logical.c */
int logical_run(struct options *o);
int logical_drop_slot(const struct options *o);

#endif
