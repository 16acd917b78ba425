/* pg-upsert: apply CDC events to a warehouse table, idempotently and in any order. */
#ifndef PG_UPSERT_H
#define PG_UPSERT_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "backoff.h"
#include "stats.h"

/* DELETE_AUTO, when --delete is not given: soft if the table has a boolean is_deleted, else hard. */
enum delete_mode { DELETE_AUTO, DELETE_SOFT, DELETE_HARD };
enum unmapped { UNMAPPED_DLQ, UNMAPPED_SKIP };

struct map;

struct options {
	const char *conninfo;
	const char *table;	/* -t, or NULL with --map */
	struct map *maps;	/* --map, in the order given */
	int nmaps;
	enum unmapped unmapped;
	int create, evolve;	/* --create, --evolve */
	const char *key;	/* comma-separated columns, or NULL: the primary key */
	const char *pos_column;
	enum delete_mode del;
	long long batch;
	long long batch_bytes;
	long long linger_ms;
	const char *ack;
	const char *dlq;
	const char *dlq_table;
	int replay;		/* --replay: the input is dead-letter records */
	struct stats_opts stats;	/* --stats, --stats-file, --metrics */
};

/* Parse the command line into o (its defaults set); a usage error exits 2. */
void parse_options(int argc, char **argv, struct options *o);

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
	/* the staged path (stage.c): NULL stage_sql when a column's type cannot be staged */
	char *stage_sql;	/* CREATE TEMP TABLE IF NOT EXISTS: the staging table */
	char *copy_sql;		/* the same, then COPY into it */
	char *clear_sql;	/* the same, TRUNCATE it, then COPY */
	char *staged_sql;	/* the statement applying what it holds */
	char *upserts_sql;	/* the same when it holds no delete */
	char *staged_release, *upserts_release;	/* each, then RELEASE SAVEPOINT pgcdc_batch */
	char **scols;		/* the table's columns, plain, in order */
	unsigned char *sconv;	/* how each takes a JSON value: enum conv */
	int nscols;
	unsigned long stage_xact;	/* the transaction that last filled the staging table */
	size_t *klens, *clens, *sclens;	/* the lengths of keys, cols and scols */
};

/* How a JSON value becomes a column's COPY text. */
enum conv {
	CONV_NONE,		/* cannot: the server's JSON path only (arrays, composites, domains) */
	CONV_SCALAR,		/* a string decoded, a number or boolean as written */
	CONV_JSON		/* json, jsonb: the value's JSON text */
};

/* target.c: name as PostgreSQL reads a table name (to_regclass) */
int target_load(PGconn *conn, const struct options *opt, const char *name, struct target *t);
int dlq_table_load(PGconn *conn, const char *name, struct target *t);
void target_free(struct target *t);

/* A column of the target table. */
struct col {
	char *plain;		/* as in the catalog */
	char *name;		/* quoted */
	char *lit;		/* as an SQL string literal */
	char *type;
	enum conv conv;
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
	const char *stage;	/* the staging table, quoted, for ST_STAGED */
};

/* sql.c */
/* ST_STAGED: from the staging table; ST_UPSERTS: the same for a batch without deletes */
enum statement { ST_APPLY, ST_MERGE, ST_MOVE, ST_STAGED, ST_UPSERTS };
char *sql_apply(const struct shape *s, enum statement kind);
char *sql_stage_create(const struct shape *s);
char *sql_truncate(const struct shape *s, int *nparams);

/* What applying something came to. */
enum outcome {
	APPLIED, TRANSIENT, FATAL,
	REFUSED,		/* COMMIT refused for a reason of the data (within apply.c) */
	RELOAD			/* a table or column is gone: reload batch_stale()'s target and retry */
};

/* A column rename of a --map rule: source name, warehouse name. */
struct rename {
	char *from, *to;
	size_t flen;		/* strlen(from) */
	char *tojson;		/* to as a quoted JSON string, what a renamed name becomes */
	size_t tojlen;
};

/* One --map rule: SRC=DST(renames). */
struct map {
	const char *arg;	/* as given, for messages */
	char *src;		/* schema.table, or the schema of a pattern */
	int pattern;		/* 0: src is schema.table; 1: schema.*; 2: *.* */
	char *dst_schema, *dst_table;	/* dst_table NULL: the source's table name */
	struct rename *ren;
	int nren;
};

/* route.c: a new string from fmt, or die */
char *strf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* route.c: --map */
void map_parse(const char *arg, struct map *m);
void maps_check(const struct map *maps, int n);
void map_free(struct map *m);

/* Where an event's parts lie, as offsets from the start of its line. */
struct ev {
	size_t row, row_len;	/* the row to apply: after, or a delete's old row or key */
	size_t pos, pos_len;
	size_t ts, ts_len;	/* ts_len 0: none */
	char op;		/* c, u, r; d with its old row; k: a delete with only its key; t; s */
	char extra;		/* the row has members the table has no column for */
	size_t un, un_len;	/* "unchanged": columns the row leaves as they are; un_len 0: none */
	size_t ok, ok_len;	/* "old_key": the key a key change came from; ok_len 0: none */
};

/* The members of an event, found by one scan of its line. */
enum field {
	F_OP, F_POS, F_KEY, F_AFTER, F_BEFORE, F_TS, F_UNCHANGED, F_OLD_KEY, F_TABLE, F_COLUMNS,
	F_PKEY, NFIELDS
};

struct scan {
	const char *v[NFIELDS];	/* each member's value, or NULL */
	size_t vl[NFIELDS];
};

/*
 * A warehouse table that events go to, with the source table it takes them
 * from: it never takes another's.  Loaded when its first event comes.
 */
enum sink_state { SINK_NEW, SINK_READY, SINK_MISSING, SINK_UNFIT };

struct sink {
	char *qname;		/* as to_regclass reads it: -t as given, or "schema"."table" */
	char *label;		/* for messages: schema.table */
	char *schema, *table;	/* plain; NULL for -t until a schema event needs them */
	char *source;		/* the source table it takes events of; NULL: -t, not bound yet */
	const struct map *map;	/* its renames, or NULL */
	enum sink_state state;
	char *refuse;		/* why it cannot take events: missing or unfit */
	char *broken;		/* a schema change it could not follow: its new events are dead-lettered */
	struct target t;	/* SINK_READY: the statements */
	unsigned long long applied;	/* events applied to it, for the reports */
	char *labels;		/* its labels in the metrics file, made at the last report */
	struct sink *next;
};

/* The sinks, and the source tables seen so far with where their events go. */
struct source;

struct router {
	const struct options *opt;
	PGconn **conn;		/* the warehouse connection, replaced when it is lost */
	struct sink *sinks;
	struct sink *bound;	/* -t: its one sink */
	struct source *sources, *last;
	size_t nsources;
	unsigned long long skipped;	/* events of unmapped tables, with --unmapped=skip */
	int fatal;		/* a second signal stopped a retry */
};

/* route.c */
int router_init(struct router *r, const struct options *opt, PGconn **conn);
/* The sink of a scanned event, with *why set when it cannot take the event; NULL: not applied. */
struct sink *route(struct router *r, const struct scan *sc, const char **why);
/* Load the sink's table again (after DDL, or when a column is gone). */
enum outcome sink_reload(struct router *r, struct sink *s);
/* The sink's name for messages. */
const char *sink_name(const struct sink *s);
/* A committed batch: tables found missing are looked up again by the next event. */
void router_after_batch(struct router *r);
void router_free(struct router *r);

/* main.c */
PGconn *connect_warehouse(const char *conninfo);
/* Make sure r has a connection: 0, or -1 after waiting a backoff step (FATAL on a second signal). */
int router_db(struct router *r, struct backoff *retry, const char *why);

/* schema.c: a schema event: with --create/--evolve, the DDL it calls for; the dead letter's reason */
const char *schema_event(struct router *r, struct sink *s, const struct scan *sc);

enum line_state { LINE_OK, LINE_REJECTED, LINE_REFUSED, LINE_SKIPPED };

/* Lines of one batch: input line i is text[off[i]..off[i]+len[i]). */
struct batch {
	char *text;
	size_t used, cap;
	size_t *off, *len;
	char **alt;		/* the line with columns renamed, applied instead of it; or NULL */
	struct sink **sink;	/* where the line applies; NULL: nowhere (dead letter, skipped, schema) */
	struct ev *ev;
	enum line_state *state;	/* rejected here, or refused by the database */
	char **why;		/* the reason, for the dead-letter record */
	size_t n, max;
	/* stage_build: the batch's COPY text, made while the previous batch commits */
	char *copy;
	size_t copy_len, copy_cap;
	struct sink *copy_sink;	/* the one table it goes to; NULL: the batch goes by batch_apply */
	int copy_deletes;	/* it has deletes: the staged statement, else the upserts' */
	int copy_refused;	/* the server refused its COPY for a reason of the data: the JSON path says which row */
};

/* The line the statements see: renamed, or as read. */
#define LINE_AT(b, i) ((b)->alt[i] ? (b)->alt[i] : (b)->text + (b)->off[i])

/* batch.c */
void batch_init(struct batch *b, size_t max);
void batch_clear(struct batch *b);
void batch_free(struct batch *b);
/* Add a line, routed and checked; 1: a schema event that waits for the batch to commit first. */
int batch_add(struct batch *b, struct router *r, const char *line, size_t len, int cut, size_t limit);
/* Take line as one to dead-letter for why, as it is (the batch has room). */
void batch_refuse(struct batch *b, const char *line, size_t len, const char *why);
void batch_recheck(struct batch *b, struct sink *s);

/* apply.c */
/* Apply the valid lines of b in one transaction, each table's with its statements. */
enum outcome batch_apply(PGconn *conn, const char *dlq_sql, struct batch *b);
/* The results of the batch stage_send sent: APPLIED when it committed, else it was rolled back. */
enum outcome batch_settle(PGconn *conn);
/* A new transaction: the staging tables it fills start empty. */
extern unsigned long batch_xact;
/* The last failure's message, for the retry warning. */
const char *batch_error(void);
/* After RELOAD: the sink whose table changed under it. */
struct sink *batch_stale(void);
/* SQLSTATE classes: what a failure means (TRANSIENT, FATAL, or APPLIED: the data). */
enum outcome pg_classify(PGconn *conn, PGresult *res);

/*
 * stage.c: apply lines [lo, hi) of s staged: 0 and *res (the failure, or
 * the statement's success with the savepoint pgcdc_batch released), else
 * they cannot be
 */
int stage_apply(PGconn *conn, struct sink *s, const struct batch *b, size_t lo, size_t hi, PGresult **res);
/* The batch's COPY text ahead, when it can go in one transaction sent at once (b->copy_sink set). */
void stage_build(struct batch *b, int dlq_table);
/*
 * Send the batch built by stage_build: BEGIN, COPY, its statement and
 * COMMIT, without waiting for the last two (batch_settle reads them); -1:
 * not sent, nothing of it left open, the batch goes by batch_apply.
 */
int stage_send(PGconn *conn, struct batch *b);

/* event.c */
const char *event_scan(const char *line, size_t len, struct scan *sc);
const char *event_check(const char *line, const struct scan *sc, const struct target *t, struct ev *ev);
/*
 * The values of the members names[0..n) (of lengths lens) of the valid JSON
 * object obj, the last of each when one is repeated (NULL: none); returns
 * how many members it has.
 */
int row_fields(const char *obj, size_t len, char *const *names, const size_t *lens, int n,
    const char **vals, size_t *vlens);
/* The lengths of names[0..n) (malloc'd), or NULL when n is 0. */
size_t *name_lengths(char *const *names, int n);
/* The value of a JSON string member val, decoded into a new string; NULL if not a string. */
char *json_string_dup(const char *val, size_t len);

/* rename.c */
/* Fill in what a rename is matched and written with. */
void rename_prepare(struct rename *r);
/*
 * The scanned line with the column names in its rows, key, old key,
 * "unchanged" and schema renamed (malloc'd), sc moved onto it; NULL when
 * it names no renamed column (line and sc stand as they are).
 */
char *rename_line(const char *line, size_t len, const struct map *m, struct scan *sc, size_t *outlen);

#endif
