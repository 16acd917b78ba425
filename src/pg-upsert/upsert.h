/* pg-upsert: apply CDC events to a warehouse table, idempotently and in any order. */
#ifndef PG_UPSERT_H
#define PG_UPSERT_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

/* DELETE_AUTO, when --delete is not given: soft if the table has a boolean is_deleted, else hard. */
enum delete_mode { DELETE_AUTO, DELETE_SOFT, DELETE_HARD };

struct options {
	const char *conninfo;
	const char *table;
	const char *key;	/* comma-separated columns, or NULL: the primary key */
	const char *pos_column;
	enum delete_mode del;
	long long batch;
	long long batch_bytes;
	long long linger_ms;
	const char *ack;
	const char *dlq;
	const char *dlq_table;
};

/* What the catalog says of the target table, and the statements built from it. */
struct target {
	char *name;		/* schema.table, for messages */
	char **keys;		/* key column names */
	int nkeys;
	char *apply_sql;	/* $1..$5: rows, pos, op, ts_ms, has-extra */
	char *merge_sql;	/* the same and $6, "unchanged": for batches with such rows */
	char *move_sql;		/* the same and $7, "old_key": for those with key changes too */
	char *trunc_sql;	/* $1: a truncate's pos, and $2, its ts_ms, if trunc_params is 2 */
	int trunc_params;
	char **cols;		/* with an extra column: the names rows may hold */
	int ncols;
	char *dlq_sql;		/* $1: raw bytes, $2: error; NULL without --dlq-table */
};

/* target.c */
int target_load(PGconn *conn, const struct options *opt, struct target *t);
int dlq_table_load(PGconn *conn, const char *name, struct target *t);
void target_free(struct target *t);

/* A column of the target table. */
struct col {
	char *plain;		/* as in the catalog */
	char *name;		/* quoted */
	char *lit;		/* as an SQL string literal */
	char *type;
};

/* What the statements are built from. */
struct shape {
	const char *table;	/* schema.table, quoted */
	const struct col *cols;
	int ncols;
	char **qk;		/* the key columns, quoted */
	int nkeys;
	int pos, deleted, ts, extra;	/* indexes in cols; -1: no such column */
	enum delete_mode del;		/* soft or hard, never auto */
	const char *tombs;	/* hard deletes: SCHEMA.cdc_tombstones, quoted; NULL: none */
	const char *tbl;	/* the table's schema.table as a literal: its rows in tombs */
	char **lk;		/* the key columns as literals: the keys of tombs */
};

/* sql.c */
enum statement { ST_APPLY, ST_MERGE, ST_MOVE };
char *sql_apply(const struct shape *s, enum statement kind);
char *sql_truncate(const struct shape *s, int *nparams);

/* Where an event's parts lie, as offsets from the start of its line. */
struct ev {
	size_t row, row_len;	/* the row to apply: after, or a delete's old row or key */
	size_t pos, pos_len;
	size_t ts, ts_len;	/* ts_len 0: none */
	char op;		/* c, u, r; d with its old row; k: a delete with only its key; t */
	char extra;		/* the row has members the table has no column for */
	size_t un, un_len;	/* "unchanged": columns the row leaves as they are; un_len 0: none */
	size_t ok, ok_len;	/* "old_key": the key a key change came from; ok_len 0: none */
};

enum line_state { LINE_OK, LINE_REJECTED, LINE_REFUSED };

/* Lines of one batch: input line i is text[off[i]..off[i]+len[i]). */
struct batch {
	char *text;
	size_t used, cap;
	size_t *off, *len;
	struct ev *ev;
	enum line_state *state;	/* rejected here, or refused by the database */
	char **why;		/* the reason, for the dead-letter record */
	size_t n, max;
};

/* apply.c */
enum outcome {
	APPLIED, TRANSIENT, FATAL,
	REFUSED			/* COMMIT refused for a reason of the data (within apply.c) */
};

/* Apply the valid lines of b in one transaction, isolating rows the database refuses. */
enum outcome batch_apply(PGconn *conn, const struct target *t, struct batch *b);
/* The last failure's message, for the retry warning. */
const char *batch_error(void);

/* event.c */
const char *event_check(const char *line, size_t len, const struct target *t, struct ev *ev);

#endif
