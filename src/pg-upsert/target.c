/*
 * The target table from the catalog: its columns, key, guard column and
 * delete flag, and the set-based statement that applies a batch of events.
 * Every identifier is quoted by libpq, never pasted in as given.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pgconn.h"
#include "upsert.h"

/* A growing string, for building statements. */
struct sbuf {
	char *s;
	size_t len;
	FILE *f;
};

static void
sb_open(struct sbuf *b)
{
	b->s = NULL;
	if ((b->f = open_memstream(&b->s, &b->len)) == NULL)
		die("out of memory");
}

static char *
sb_close(struct sbuf *b)
{
	fclose(b->f);
	return b->s;
}

static PGresult *
query(PGconn *conn, const char *sql, int n, const char *const *params)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		log_error("query failed: %s", pg_errmsg(conn));
		PQclear(res);
		return NULL;
	}
	return res;
}

static int
find(struct col *cols, int n, const char *quoted)
{
	int i;

	for (i = 0; i < n; i++)
		if (strcmp(cols[i].name, quoted) == 0)
			return i;
	return -1;
}

/* Split --key=a,b into names. */
static int
split_keys(const char *list, char ***out)
{
	char *copy = strdup(list), *tok, *save = NULL;
	int n = 0;

	if (copy == NULL || (*out = calloc(strlen(list) + 1, sizeof **out)) == NULL)
		die("out of memory");
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save))
		if (((*out)[n++] = strdup(tok)) == NULL)
			die("out of memory");
	free(copy);
	return n;
}

/* The key: --key's columns, which a unique index must cover exactly, or the primary key. */
static int
load_keys(PGconn *conn, const struct options *opt, const char *oid, struct target *t)
{
	const char *params[2] = { oid, NULL };
	PGresult *res;
	int i, ok;

	if (opt->key == NULL) {
		res = query(conn,
		    "SELECT a.attname FROM pg_index i CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(n, o)"
		    " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n"
		    " WHERE i.indrelid = $1::oid AND i.indisprimary ORDER BY k.o", 1, params);
		if (res == NULL)
			return -1;
		if (PQntuples(res) == 0) {
			log_error("table \"%s\" has no primary key (give the key with --key)", t->name);
			PQclear(res);
			return -1;
		}
		t->nkeys = PQntuples(res);
		if ((t->keys = calloc(t->nkeys, sizeof *t->keys)) == NULL)
			die("out of memory");
		for (i = 0; i < t->nkeys; i++)
			if ((t->keys[i] = strdup(PQgetvalue(res, i, 0))) == NULL)
				die("out of memory");
		PQclear(res);
		return 0;
	}
	t->nkeys = split_keys(opt->key, &t->keys);
	params[1] = opt->key;
	res = query(conn,
	    "SELECT count(*) FROM pg_index i WHERE i.indrelid = $1::oid AND i.indisunique"
	    " AND i.indpred IS NULL AND i.indexprs IS NULL"
	    " AND (SELECT array_agg(a.attname::text ORDER BY a.attname) FROM pg_attribute a"
	    "      WHERE a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey))"
	    "   = (SELECT array_agg(k ORDER BY k) FROM unnest(string_to_array($2, ',')) AS k)", 2, params);
	if (res == NULL)
		return -1;
	ok = strcmp(PQgetvalue(res, 0, 0), "0") != 0;
	PQclear(res);
	if (!ok) {
		log_error("no unique index of table \"%s\" is on exactly the key columns \"%s\"",
		    t->name, opt->key);
		return -1;
	}
	return 0;
}

/*
 * The staged path, when every column can take a value converted by the
 * client (arrays, composites and domains are left to the server's JSON
 * path), in a staging table of its own: a reloaded table gets a new one.
 */
static void
build_staged(struct shape *s, struct target *t)
{
	static unsigned long serial;
	char stage[64];
	int i;

	for (i = 0; i < s->ncols; i++)
		if (s->cols[i].conv == CONV_NONE || strncmp(s->cols[i].plain, "pgcdc ", 6) == 0)
			return;
	snprintf(stage, sizeof stage, "pg_temp.pgcdc_stage_%lu", ++serial);
	s->stage = stage;
	t->stage_sql = sql_stage_create(s);
	/* one round trip: the table made if need be (emptied if filled earlier in the transaction), then COPY */
	t->copy_sql = strf("%s; COPY %s FROM STDIN", t->stage_sql, stage);
	t->clear_sql = strf("%s; TRUNCATE %s; COPY %s FROM STDIN", t->stage_sql, stage, stage);
	t->staged_sql = sql_apply(s, ST_STAGED);
	t->upserts_sql = sql_apply(s, ST_UPSERTS);
	/* the batch's savepoint released in the same round trip */
	t->staged_release = strf("%s; RELEASE SAVEPOINT pgcdc_batch", t->staged_sql);
	t->upserts_release = strf("%s; RELEASE SAVEPOINT pgcdc_batch", t->upserts_sql);
	s->stage = NULL;
	t->nscols = s->ncols;
	if ((t->scols = calloc(s->ncols, sizeof *t->scols)) == NULL ||
	    (t->sconv = calloc(s->ncols, 1)) == NULL)
		die("out of memory");
	for (i = 0; i < s->ncols; i++) {
		t->scols[i] = xstrdup(s->cols[i].plain);
		t->sconv[i] = (unsigned char)s->cols[i].conv;
	}
}

/*
 * The statements, from the columns found, the delete mode and, for hard
 * deletes, the tombstone table (NULL: none).
 */
static void
build_statements(PGconn *conn, enum delete_mode del, const char *tombs, const char *table,
    const struct col *cols, int ncols, struct target *t, const int *special)
{
	struct shape s = {
		.table = table, .cols = cols, .ncols = ncols, .nkeys = t->nkeys, .del = del,
		.pos = special[0], .deleted = special[1], .ts = special[2], .extra = special[3],
		.tombs = tombs
	};
	char *tbl = pg_quote_literal(conn, t->name);
	int i;

	s.tbl = tbl;
	if ((s.qk = calloc(t->nkeys, sizeof *s.qk)) == NULL || (s.lk = calloc(t->nkeys, sizeof *s.lk)) == NULL)
		die("out of memory");
	for (i = 0; i < t->nkeys; i++) {
		s.qk[i] = pg_quote_ident(conn, t->keys[i]);
		s.lk[i] = pg_quote_literal(conn, t->keys[i]);
	}
	t->apply_sql = sql_apply(&s, ST_APPLY);
	t->merge_sql = sql_apply(&s, ST_MERGE);
	t->move_sql = sql_apply(&s, ST_MOVE);
	t->trunc_sql = sql_truncate(&s, &t->trunc_params);
	build_staged(&s, t);
	for (i = 0; i < t->nkeys; i++) {
		free(s.qk[i]);
		free(s.lk[i]);
	}
	free(s.qk);
	free(s.lk);
	free(tbl);
}

/*
 * Hard deletes keep their guard in the table cdc_tombstones of the target's
 * schema, when it is there: its quoted name in *tombs, or NULL and a
 * warning.  -1 when it is there but unfit.
 */
static int
load_tombstones(PGconn *conn, const char *oid, const struct target *t, char **tombs)
{
	const char *params[1] = { oid };
	PGresult *res = query(conn,
	    "SELECT n.nspname, c.oid IS NOT NULL, (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid"
	    "  AND NOT a.attisdropped AND (a.attname, format_type(a.atttypid, NULL)) IN (('tbl', 'text'),"
	    "  ('key', 'jsonb'), ('pos', 'numeric'), ('deleted_at', 'timestamp with time zone'))) = 4"
	    " AND EXISTS (SELECT FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique"
	    "  AND i.indpred IS NULL AND i.indexprs IS NULL AND (SELECT array_agg(a.attname::text ORDER BY a.attname)"
	    "  FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum = ANY (i.indkey)) = '{key,tbl}')"
	    " FROM pg_class r JOIN pg_namespace n ON n.oid = r.relnamespace LEFT JOIN pg_class c"
	    " ON c.relnamespace = n.oid AND c.relname = 'cdc_tombstones' AND c.relkind IN ('r', 'p')"
	    " WHERE r.oid = $1::oid", 1, params);
	const char *nsp;
	char *q;
	int rc = 0;

	*tombs = NULL;
	if (res == NULL)
		return -1;
	nsp = PQgetvalue(res, 0, 0);
	if (strcmp(PQgetvalue(res, 0, 1), "t") != 0)
		log_warning("hard deletes from \"%s\" keep no guard without table \"%s.cdc_tombstones\":"
		    " a change older than a delete or truncate can bring its row back", t->name, nsp);
	else if (strcmp(PQgetvalue(res, 0, 2), "t") != 0) {
		log_error("table \"%s.cdc_tombstones\" needs the columns tbl text, key jsonb, pos numeric"
		    " and deleted_at timestamptz, and a unique index on (tbl, key)", nsp);
		rc = -1;
	} else {
		q = pg_quote_ident(conn, nsp);
		if ((*tombs = malloc(strlen(q) + sizeof ".cdc_tombstones")) == NULL)
			die("out of memory");
		sprintf(*tombs, "%s.cdc_tombstones", q);
		free(q);
	}
	PQclear(res);
	return rc;
}

/* The table's oid, its quoted name for statements and, in t, its schema.table name. */
static int
resolve_table(PGconn *conn, const char *name, struct target *t, char **oid, char **table)
{
	const char *params[1] = { name };
	PGresult *res;
	const char *nsp, *rel;
	char *s, *r;
	size_t len;

	res = query(conn,
	    "SELECT c.oid::text, n.nspname, c.relname FROM pg_class c"
	    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)", 1, params);
	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0) {
		log_error("table \"%s\" does not exist", name);
		PQclear(res);
		return -1;
	}
	nsp = PQgetvalue(res, 0, 1);
	rel = PQgetvalue(res, 0, 2);
	s = pg_quote_ident(conn, nsp);
	r = pg_quote_ident(conn, rel);
	len = strlen(s) + strlen(r) + 2;
	*oid = xstrdup(PQgetvalue(res, 0, 0));
	if ((*table = malloc(len)) == NULL || (t->name = malloc(strlen(nsp) + strlen(rel) + 2)) == NULL)
		die("out of memory");
	snprintf(*table, len, "%s.%s", s, r);
	sprintf(t->name, "%s.%s", nsp, rel);
	free(s);
	free(r);
	PQclear(res);
	return 0;
}

/* The table's columns, quoted and plain, with their types; NULL on error. */
static struct col *
load_columns(PGconn *conn, const char *oid, int *n)
{
	const char *params[1] = { oid };
	PGresult *res;
	struct col *cols;
	int i;

	res = query(conn,
	    "SELECT a.attname, format_type(a.atttypid, a.atttypmod),"
	    " CASE WHEN y.oid IN ('json'::regtype, 'jsonb'::regtype) THEN 2"
	    "  WHEN y.typtype IN ('b', 'e', 'r') AND y.typcategory <> 'A' THEN 1 ELSE 0 END"
	    " FROM pg_attribute a JOIN pg_type y ON y.oid = a.atttypid"
	    " WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum", 1, params);
	if (res == NULL)
		return NULL;
	*n = PQntuples(res);
	if ((cols = calloc(*n + 1, sizeof *cols)) == NULL)
		die("out of memory");
	for (i = 0; i < *n; i++) {
		cols[i].plain = xstrdup(PQgetvalue(res, i, 0));
		cols[i].name = pg_quote_ident(conn, PQgetvalue(res, i, 0));
		cols[i].lit = pg_quote_literal(conn, PQgetvalue(res, i, 0));
		cols[i].type = xstrdup(PQgetvalue(res, i, 1));
		cols[i].conv = (enum conv)atoi(PQgetvalue(res, i, 2));
	}
	PQclear(res);
	return cols;
}

static void
free_columns(struct col *cols, int n)
{
	int i;

	for (i = 0; i < n; i++) {
		free(cols[i].plain);
		free(cols[i].name);
		free(cols[i].lit);
		free(cols[i].type);
	}
	free(cols);
}

/* The column named plain, compared as the catalog's names are quoted; -1 if none. */
static int
find_plain(PGconn *conn, struct col *cols, int n, const char *plain)
{
	char *q = pg_quote_ident(conn, plain);
	int i = find(cols, n, q);

	free(q);
	return i;
}

/*
 * The columns with a role, in special: the guard, the delete flag, the change
 * time and extra (-1 where absent or of another type); in *del, soft or hard.
 * 0, or -1 after saying what the table lacks.
 */
static int
find_special(PGconn *conn, const struct options *opt, const struct target *t, struct col *cols, int n,
    int special[4], enum delete_mode *del)
{
	int i, rc = 0, pos, deleted, ts, extra;

	for (i = 0; i < t->nkeys; i++) {
		if (find_plain(conn, cols, n, t->keys[i]) < 0) {
			log_error("table \"%s\" has no column \"%s\"", t->name, t->keys[i]);
			rc = -1;
		}
	}
	if ((pos = find_plain(conn, cols, n, opt->pos_column)) < 0) {
		log_error("table \"%s\" has no guard column \"%s\" (see --pos-column)", t->name, opt->pos_column);
		rc = -1;
	}
	if ((deleted = find_plain(conn, cols, n, "is_deleted")) >= 0 && strcmp(cols[deleted].type, "boolean") != 0)
		deleted = -1;
	/* without --delete: soft where the table can keep the flag */
	*del = opt->del != DELETE_AUTO ? opt->del : deleted >= 0 ? DELETE_SOFT : DELETE_HARD;
	if (*del == DELETE_SOFT && deleted < 0) {
		log_error("table \"%s\" has no boolean column \"is_deleted\" for soft deletes (add one or use --delete=hard)", t->name);
		rc = -1;
	}
	if ((ts = find_plain(conn, cols, n, "last_cdc_ts")) >= 0 && strncmp(cols[ts].type, "timestamp", 9) != 0)
		ts = -1;
	if ((extra = find_plain(conn, cols, n, "extra")) >= 0 && strcmp(cols[extra].type, "jsonb") != 0)
		extra = -1;
	special[0] = pos;
	special[1] = deleted;
	special[2] = ts;
	special[3] = extra;
	return rc;
}

int
target_load(PGconn *conn, const struct options *opt, const char *name, struct target *t)
{
	struct col *cols;
	char *table, *oid, *tombs = NULL;
	enum delete_mode del;
	int i, n, rc, special[4];

	if (resolve_table(conn, name, t, &oid, &table) < 0)
		return -1;
	if (load_keys(conn, opt, oid, t) < 0 || (cols = load_columns(conn, oid, &n)) == NULL) {
		free(oid);
		free(table);
		return -1;
	}
	if ((rc = find_special(conn, opt, t, cols, n, special, &del)) == 0 && del == DELETE_HARD)
		rc = load_tombstones(conn, oid, t, &tombs);
	if (rc == 0)
		build_statements(conn, del, tombs, table, cols, n, t, special);
	if (special[3] >= 0 && n <= 256) {
		/* rows are checked for members beyond these, which go to extra */
		if ((t->cols = calloc(n, sizeof *t->cols)) == NULL)
			die("out of memory");
		for (i = 0; i < n; i++)
			t->cols[i] = xstrdup(cols[i].plain);
		t->ncols = n;
	}
	t->klens = name_lengths(t->keys, t->nkeys);
	t->clens = name_lengths(t->cols, t->ncols);
	t->sclens = name_lengths(t->scols, t->nscols);
	free_columns(cols, n);
	free(tombs);
	free(table);
	free(oid);
	return rc;
}

void
target_free(struct target *t)
{
	int i;

	for (i = 0; i < t->nkeys; i++)
		free(t->keys[i]);
	free(t->keys);
	for (i = 0; i < t->ncols; i++)
		free(t->cols[i]);
	free(t->cols);
	free(t->name);
	free(t->apply_sql);
	free(t->merge_sql);
	free(t->move_sql);
	free(t->trunc_sql);
	free(t->dlq_sql);
	free(t->stage_sql);
	free(t->copy_sql);
	free(t->clear_sql);
	free(t->staged_sql);
	free(t->upserts_sql);
	free(t->staged_release);
	free(t->upserts_release);
	for (i = 0; i < t->nscols; i++)
		free(t->scols[i]);
	free(t->scols);
	free(t->sconv);
	free(t->klens);
	free(t->clens);
	free(t->sclens);
}

/* --dlq-table: it must exist; rejected lines go to its raw_value and error_message. */
int
dlq_table_load(PGconn *conn, const char *name, struct target *t)
{
	const char *params[1] = { name };
	PGresult *res = query(conn,
	    "SELECT n.nspname, c.relname, (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid"
	    "  AND a.attname IN ('raw_value', 'error_message') AND NOT a.attisdropped)"
	    " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass($1)",
	    1, params);
	struct sbuf b;
	char *s, *r;

	if (res == NULL)
		return -1;
	if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 2), "2") != 0) {
		log_error("dead-letter table \"%s\" %s", name, PQntuples(res) == 0 ? "does not exist" :
		    "needs the columns raw_value and error_message");
		PQclear(res);
		return -1;
	}
	s = pg_quote_ident(conn, PQgetvalue(res, 0, 0));
	r = pg_quote_ident(conn, PQgetvalue(res, 0, 1));
	sb_open(&b);
	fprintf(b.f, "INSERT INTO %s.%s (raw_value, error_message) VALUES ($1, $2)", s, r);
	t->dlq_sql = sb_close(&b);
	free(s);
	free(r);
	PQclear(res);
	return 0;
}
