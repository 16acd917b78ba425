/*
 * --snapshot, in both modes: a table's rows as op "r" events, read in one
 * repeatable-read transaction, with --schema-events the table's schema event
 * before the first of them.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsonout.h"
#include "log.h"
#include "pgconn.h"
#include "tail.h"

/*
 * Open the snapshot's transaction (taking the exported snapshot import, if
 * any) and its cursor over t's rows; the snapshot's text, or NULL.
 */
static char *
begin_snapshot(PGconn *conn, const struct table *t, const char *import)
{
	char *text, *decl;
	size_t len;
	int rc;

	if (pg_command(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY") < 0)
		return NULL;
	if (import) {
		char *lit = PQescapeLiteral(conn, import, strlen(import));
		char set[256];

		if (lit == NULL)
			return NULL;
		snprintf(set, sizeof set, "SET TRANSACTION SNAPSHOT %s", lit);
		PQfreemem(lit);
		if (pg_command(conn, set) < 0)
			return NULL;
	}
	if ((text = current_snapshot(conn)) == NULL)
		return NULL;
	len = strlen(t->snapshot_sql) + 64;
	if ((decl = malloc(len)) == NULL)
		die("out of memory");
	snprintf(decl, len, "DECLARE pgcdc_snapshot NO SCROLL CURSOR FOR %s", t->snapshot_sql);
	rc = pg_command(conn, decl);
	free(decl);
	if (rc < 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* --schema-events: read t's schema now; is its event due before the first row? */
static int
snapshot_schema(PGconn *conn, struct table *t)
{
	char *schema, *names;

	if (schema_read(conn, t->regclass, &schema, &names) < 0)
		return -1;
	free(t->schema);
	free(t->names);
	t->schema = schema;
	t->names = names;
	return t->emitted == NULL || schema_differs(t->schema, t->emitted);
}

static void
put_rows(struct emitter *e, const struct table *t, PGresult *res, const char *ts)
{
	long i, n = PQntuples(res);

	for (i = 0; i < n; i++) {
		fputs("{\"op\":\"r\"", e->out);
		fputs(t->prefix, e->out);
		json_put_compact(e->out, PQgetvalue(res, i, 0), PQgetlength(res, i, 0));
		fputs(",\"before\":null,\"after\":", e->out);
		put_field(e->out, res, i, 1);
		fprintf(e->out, ",\"pos\":0,\"txid\":null,\"ts_ms\":%s}\n", ts);
	}
	e->lines += n;
	if (n > 0)
		e->pos = 0;
}

/*
 * Write t's rows as op "r" events, read in one repeatable-read transaction
 * whose snapshot is returned in *taken: the stream that follows continues
 * with exactly the transactions that snapshot did not see.  With import, the
 * transaction takes that exported snapshot (logical mode: the replication
 * slot's starting point) instead of a fresh one.  Snapshot rows carry pos 0,
 * below any change, and so does the schema event before them.  Returns the
 * rows written or -1.
 */
long
emit_snapshot(PGconn *conn, struct table *t, struct emitter *e, long batch,
    const char *import, struct snap **taken)
{
	char fetch[64], ts[32];
	char *text;
	struct timespec now;
	long total = 0, n, want;
	int due = 0;
	PGresult *res;

	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(ts, sizeof ts, "%lld", (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000);
	if ((text = begin_snapshot(conn, t, import)) == NULL)
		goto fail;
	if (e->schema_events && (due = snapshot_schema(conn, t)) < 0)
		goto fail;
	for (;;) {
		want = e->room(e);
		if (want <= 0)
			goto fail;
		if (want > batch)
			want = batch;
		snprintf(fetch, sizeof fetch, "FETCH %ld FROM pgcdc_snapshot", want);
		res = PQexec(conn, fetch);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			if (!pg_conn_lost(conn))
				log_error("cannot read \"%s\": %s", t->name, pg_errmsg(conn));
			PQclear(res);
			goto fail;
		}
		n = PQntuples(res);
		if (n > 0 && due) {
			/* the schema event comes right before the first row, if there is one */
			schema_put(e->out, t->prefix, t->schema, "0", "null", ts);
			e->lines++;
			free(t->emitted);
			t->emitted = xstrdup(t->schema);
			due = 0;
		}
		put_rows(e, t, res, ts);
		PQclear(res);
		total += n;
		if (fflush(e->out) != 0)
			die("write error:");
		if (n < want)
			break;
	}
	if (pg_command(conn, "COMMIT") < 0)
		goto fail;
	*taken = snap_new(text);
	free(text);
	return total;
fail:
	free(text);
	if (!pg_conn_lost(conn))
		pg_command(conn, "ROLLBACK");
	return -1;
}
