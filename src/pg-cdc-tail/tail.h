/* pg-cdc-tail: emit committed changes of captured tables as CDC events. */
#ifndef PG_CDC_TAIL_H
#define PG_CDC_TAIL_H

#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "stats.h"

struct options {
	const char *conninfo;
	const char **tables;
	int ntables;
	const char *name;		/* consumer name */
	const char *ack;		/* ack file, or NULL */
	int follow;
	int snapshot;
	int prune;
	int schema_events;	/* --schema-events */
	int dynamic;		/* no -t, or a pattern: tables enabled later are followed too */
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
	struct stats_opts stats;	/* --stats, --stats-file, --metrics */
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
	char *first_sql;	/* its first page */
	char *snapshot_sql;	/* the table's rows with their keys */
	char *prefix;		/* ,"table":"...","key": */
	struct pos cur;		/* what has been written out */
	struct pos stored;	/* what the database holds */
	int has_stored;		/* the consumer row exists */
	int done;		/* without -f: the batch taken at start is drained */
	int final_batch;	/* the batch in progress started after this run began */
	/* --schema-events */
	char *schema;		/* what the rows being read were written under; NULL: unknown */
	char *names;		/* its column names, a JSON array as json_agg writes it */
	char *row_names;	/* the member names of the last row read */
	char *emitted;		/* the schema last emitted for the table in this run */
	char *schema_sql;	/* the query for the schema in force at a log id */
	/* the reports (report.c) */
	char *labels;		/* table="schema.table", of its table_changes_behind sample */
	double behind;		/* changes committed and not written out, as last asked; NAN: unknown */
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
/* Is sql/cdc.sql installed?  -1 after an error message. */
int capture_installed(PGconn *conn);
/* Look up a captured table; with schema, its pages also name each row's members. */
int tables_resolve(PGconn *conn, struct table *t, const char *name, int schema);
void table_free(struct table *t);
int prune_log(PGconn *conn, struct table *t);
/* Try the consumer's session lock: 1 taken, 0 held by server process *pid, -1 on error. */
int consumer_lock(PGconn *conn, const char *consumer, long *pid);
/* The current snapshot's text, or NULL after logging. */
char *current_snapshot(PGconn *conn);
/*
 * Execute prepared statement name, preparing it from sql first unless
 * *prepared says it is on this connection; the result, for the caller to
 * check.
 */
PGresult *exec_prepared(PGconn *conn, const char *name, const char *sql, int n,
    const char *const *params, int *prepared);
/* ,"table":"schema.table","key": as every event of that table has it */
char *event_prefix(const char *name);

/* Write one page of t's batch; returns rows written or -1. */
struct emitter {
	FILE *out;
	struct ackwin *win;	/* NULL without --ack (trigger mode) */
	int index;		/* table index, for window marks */
	uint64_t lines;		/* lines written so far */
	uint64_t pos;		/* the pos of the last event written */
	struct stats_rate rate;	/* of lines, for the reports */
	int schema_events;	/* --schema-events */
	/* How many more lines may be written now; waits while none may, 0 to give up. */
	long (*room)(struct emitter *e);
};
/* A log or snapshot column as JSON: null, or the value on one line. */
void put_field(FILE *out, PGresult *res, int row, int col);
long emit_page(PGconn *conn, struct table *t, struct emitter *e, long limit);
long emit_snapshot(PGconn *conn, struct table *t, struct emitter *e, long batch,
    const char *import, struct snap **taken);

/* schema.c */
/* s (len bytes) as compact JSON, malloc'd. */
char *json_compact_dup(const char *s, size_t len);
/* Table oid's schema from the catalog, and its column names as a JSON array; -1 after logging. */
int schema_read(PGconn *conn, const char *oid, char **schema, char **names);
/* The schema of a relation whose columns cols are [{"o","name","type","typmod"},...]. */
int schema_of_relation(PGconn *conn, const char *oid, const char *cols, char **schema);
/*
 * The member names of the JSON object s[0..len) (a log row's after or before,
 * as the server wrote it) as json_agg gives a list of names, ["a", "b"], the
 * keys copied as written; NULL for no members.  Each row of a page would
 * otherwise have the server list its keys, the larger part of its cost.
 */
char *schema_row_names(const char *s, size_t len);
/* Are names (as schema_row_names gives them) the member names of the object s[0..len)? */
int schema_row_names_are(const char *names, const char *s, size_t len);
/* Do two schemas differ in their columns' names, types or order, or their primary key? */
int schema_differs(const char *a, const char *b);
/* The "s" event of schema, for the change with this pos, txid and ts_ms (JSON texts). */
void schema_put(FILE *out, const char *prefix, const char *schema, const char *pos,
    const char *txid, const char *ts_ms);
/* Is this -t value a shell pattern; does any pattern of pats match schema.table name? */
int is_pattern(const char *s);
int pattern_match(const char *const *pats, int n, const char *name);

/* Trigger mode's run (main.c, tables.c). */
struct tail {
	struct emitter e;	/* first member: room() gets the tail back from it */
	struct options *opt;
	PGconn *conn;
	struct table *tables;
	int ntables, cap;
	struct pos *want;	/* per table: acknowledged position not yet stored */
	int *moved;
	int ackfd;		/* readable when the ack file changes */
	double last_prune;
	double last_scan;	/* mono_ms() of the last look for tables enabled since */
	double last_round;	/* mono_ms() when the last round opened, following */
	int listening;		/* LISTEN pgcdc is in force (following, while idle) */
	int rescan;		/* cdc.enable notified: look now */
	int started;		/* the start-up snapshot is taken: a table found now gets its own */
	int round_prepared;	/* position.c's statements are prepared on the connection */
	int store_prepared;
	/* the reports (report.c) */
	struct reporter rep;
	unsigned long reconnects;	/* connections made anew after one was lost */
	double lag_at;		/* mono_ms() when the lag was last asked of the source */
	double changes_behind, seconds_behind;	/* its answer; NAN: unknown */
	int lag_warned;		/* the source could not say: warned once */
};

/* Following, the least time between the starts of two rounds (main.c's pace()). */
#define ROUND_GAP_MS 5

/* The most tables one run follows: bounds the marks of the ack window. */
#define MAX_TABLES 10000

/* options.c: the command line into o; usage errors exit 2 */
void parse_options(int argc, char **argv, struct options *o);

/* position.c */
/*
 * The positions pick(s, i) gives for tables i (skipping NULL), as the array
 * texts of STORE_SQL's $2 to $5 (oids, snap_lo, snap_hi, last_id), for
 * free(); the number of them.
 */
int pos_arrays(const struct tail *s, const struct pos *(*pick)(const struct tail *s, int i),
    char *arr[4]);
int position_load(PGconn *conn, const char *consumer, struct table *t);
/* Store each table's position where it moved (with --ack: where acknowledged). */
int sync_positions(struct tail *s);
/*
 * Open a round: store the positions due, take the snapshot (its text, or
 * NULL after logging) and flush the WAL it sees.
 */
char *round_snapshot(struct tail *s);
/* A new session: its commits flush the WAL; nothing is prepared on it yet. */
int session_setup(struct tail *s);

/* tables.c */
/* The -t tables, and with no -t or a pattern, the captured tables matching; -1 after logging. */
int tables_setup(struct tail *s);
/* With -f and no -t or a pattern: take up tables enabled since the last look. */
int tables_rescan(struct tail *s);
/* --snapshot at start: each table's rows as op "r" events. */
int take_snapshots(struct tail *s);
/* Reconnect after a lost connection while following (main.c); -1 when that is over. */
int recover(struct tail *s);

/* main.c: at exit, lines not acknowledged come again: an error unless a signal stopped us */
int report_unacked(uint64_t acked, uint64_t lines);

/* report.c: trigger mode's reports (stats.h) */
/* Open the reporter (-1 after logging); READY=1 once connected, STOPPING=1, the last report. */
int report_open(struct tail *s);
void report_ready(struct tail *s);
int report_close(struct tail *s);
/* Both modes' figures: lines_out, lines_acknowledged, pos, reconnects. */
void report_lines(struct figures *f, struct emitter *e, uint64_t acked, unsigned long reconnects);

/* logical.c */
int logical_run(struct options *o);
int logical_drop_slot(const struct options *o);

#endif
