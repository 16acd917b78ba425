/*
 * Logical mode: read committed changes from a replication slot over the
 * streaming replication protocol with the built-in pgoutput plugin, and write
 * them as the same CDC events as trigger mode.  The source pays nothing extra
 * per write: the changes come from the WAL it writes anyway.
 *
 * pgoutput sends each transaction whole, in commit order, when it commits
 * (the server spills large ones to disk, not us): every change is written out
 * as it arrives, so no transaction is held in memory here.  Each change's pos
 * is its LSN; a row lock keeps two transactions from changing one key at
 * once, so per key the LSNs grow in commit order.
 *
 * The slot's confirmed flush LSN is the durable position.  It moves to a
 * transaction's end only once every line up to its last change is
 * acknowledged (--ack) or written (without it); restarting replays from there.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "ackwin.h"
#include "log.h"
#include "logical.h"
#include "notify.h"
#include "pgconn.h"
#include "sig.h"

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL)
		die("out of memory");
	return p;
}

void
lsn_text(char *buf, size_t size, uint64_t lsn)
{
	snprintf(buf, size, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

uint64_t
lsn_parse(const char *s)
{
	unsigned hi, lo;

	if (s == NULL || sscanf(s, "%X/%X", &hi, &lo) != 2)
		return 0;
	return (uint64_t)hi << 32 | lo;
}

int
logical_snapshot(struct logical *s, const char *exported)
{
	PGconn *conn;
	int i, rc = 0;

	if (exported == NULL)
		log_warning("slot \"%s\" exists: the snapshot is taken now, not at the slot's start;"
		    " changes since the slot's position follow it", s->opt->slot);
	if ((conn = catalog_conn(s)) == NULL)
		return -1;
	for (i = 0; i < s->ninfo && rc == 0 && !sig_stop; i++) {
		struct table_info *ti = &s->info[i];
		struct table t = { 0 };
		struct snap *taken = NULL;
		char oid[16];

		if (!wanted(s, ti->oid, ti->name))
			continue;
		if (ti->snapshot_sql == NULL) {
			log_error("table \"%s\" has no primary key: --snapshot cannot key its rows", ti->name);
			rc = -1;
			break;
		}
		snprintf(oid, sizeof oid, "%" PRIu32, ti->oid);
		t.regclass = oid;
		t.prefix = event_prefix(ti->name);
		t.snapshot_sql = ti->snapshot_sql;
		t.name = ti->name;
		if (emit_snapshot(conn, &t, &s->e, s->opt->batch, exported, &taken) < 0)
			rc = -1;
		snap_unref(taken);
		free(t.prefix);
		free(t.schema);
		free(t.names);
		/* the stream's first change of the table compares with what was emitted */
		if (t.emitted)
			schema_emitted(s, ti->oid, t.emitted);
	}
	if (fflush(stdout) != 0)
		die("write error:");
	return sig_stop ? -1 : rc;
}

/* What the run allocated, once the connection is closed. */
static void
logical_free(struct logical *s)
{
	int i, j;

	for (i = 0; i < s->nrels; i++)
		rel_clear(&s->rels[i]);
	free(s->rels);
	for (i = 0; i < s->ninfo; i++) {
		for (j = 0; j < s->info[i].npk; j++)
			free(s->info[i].pk[j]);
		free(s->info[i].pk);
		free(s->info[i].name);
		free(s->info[i].snapshot_sql);
	}
	free(s->info);
	for (i = 0; i < s->nseen; i++)
		free(s->seen[i].emitted);
	free(s->seen);
	PQfinish(s->catalog);
	free(s->wanted);
	free(s->domains);
	ackwin_free(s->win, NULL, NULL);
	free(s->vals);
	free(s->olds);
}

int
logical_run(struct options *opt)
{
	struct logical s = { .opt = opt, .ackfd = -1 };
	static char outbuf[1 << 16];
	int status;

	setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
	s.e.out = stdout;
	s.e.room = room;
	s.e.schema_events = opt->schema_events;
	if ((s.win = ackwin_open(opt->ack, sizeof(uint64_t), SIZE_MAX)) == NULL)
		return -1;
	s.ackfd = ackwin_fd(s.win);
	if (logical_report_open(&s) < 0) {
		logical_free(&s);
		return -1;
	}
	status = connect_stream(&s, 1) < 0 ? -1 : 0;
	if (status == 0) {
		/* streaming, the tables known: what systemd waits for with Type=notify */
		notify("READY=1\nSTATUS=streaming from slot %s", opt->slot);
		status = stream(&s);
	}
	if (fflush(stdout) != 0 || (!opt->follow && fclose(stdout) != 0))
		die("write error:");
	if (status == 0 && finish(&s) < 0)
		status = -1;
	/* a clean stop ends the COPY before closing, as pg_recvlogical does */
	if (status == 0)
		stream_end(&s);
	if (logical_report_close(&s) < 0)
		status = -1;
	PQfinish(s.conn);
	logical_free(&s);
	if (opt->follow && fclose(stdout) != 0 && status == 0)
		die("write error:");
	return status;
}
