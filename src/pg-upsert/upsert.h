/* pg-upsert: apply CDC events to a warehouse table, idempotently and in any order. */
#ifndef PG_UPSERT_H
#define PG_UPSERT_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

enum delete_mode { DELETE_SOFT, DELETE_HARD };

struct options {
	const char *conninfo;
	const char *table;
	const char *key;	/* comma-separated columns, or NULL: the primary key */
	const char *pos_column;
	enum delete_mode del;
	long long batch;
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
	char *apply_sql;	/* $1: a JSON array of events */
	char *dlq_sql;		/* $1: raw bytes, $2: error; NULL without --dlq-table */
};

/* target.c */
int target_load(PGconn *conn, const struct options *opt, struct target *t);
int dlq_table_load(PGconn *conn, const char *name, struct target *t);
void target_free(struct target *t);

/* Lines of one batch: input line i is text[off[i]..off[i]+len[i]). */
struct batch {
	char *text;
	size_t used, cap;
	size_t *off, *len;
	char **reject;		/* why line i is refused before reaching the database, or NULL */
	int *bad;		/* line i was refused by the database */
	char **why;		/* its error */
	size_t n, max;
};

/* apply.c */
enum outcome { APPLIED, TRANSIENT, FATAL };

/* Apply the valid lines of b in one transaction, isolating rows the database refuses. */
enum outcome batch_apply(PGconn *conn, const struct target *t, struct batch *b);
const char *event_check(const char *line, size_t len, const struct target *t);

#endif
