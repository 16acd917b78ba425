/*
 * pg-cdc-tail logical mode, private to its parts: the state of one run and
 * what each part offers the others.
 *
 *   logical.c          the run: set up, stream, wait for the last acks, tear down; --snapshot
 *   logical-catalog.c  the publication and the catalog read before streaming
 *   logical-slot.c     the replication connection, the slot, and (re)starting the stream
 *   logical-decode.c   pgoutput messages to CDC events
 *   logical-stream.c   the stream loop: acknowledgements, status updates, the clean stop
 *   logical-report.c   the reports (--stats, --metrics, systemd's notify protocol)
 */
#ifndef PG_CDC_TAIL_LOGICAL_H
#define PG_CDC_TAIL_LOGICAL_H

#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "pgoutput.h"
#include "tail.h"

/* Per table, from the catalog before streaming: primary key and snapshot query. */
struct table_info {
	uint32_t oid;
	char *name;
	char **pk;
	int npk;
	char *snapshot_sql;
};

struct logical {
	struct emitter e;	/* first member: room() gets the state back from it */
	struct options *opt;
	PGconn *conn;
	struct table_info *info;
	int ninfo;
	uint32_t *wanted;	/* oids of -t tables; none: every published table */
	int nwanted;
	struct relation *rels;
	int nrels;
	uint32_t *domains;	/* pairs: domain oid, base type oid */
	int ndomains;
	struct ackwin *win;	/* marks: once line N is durable, the slot may confirm an LSN */
	uint64_t acked;
	int ackfd;
	/* transaction in progress */
	int in_txn;
	uint32_t xid;
	int64_t ts_ms;
	/* LSNs */
	uint64_t received;	/* the server's WAL end, as last heard */
	uint64_t durable;	/* may be confirmed as flushed */
	uint64_t reported;	/* flush LSN last sent */
	uint64_t stop_at;	/* without -f: the WAL end at start */
	uint64_t idle_end;	/* WAL end of the last keepalive between transactions */
	long status_ms;		/* interval of status updates */
	double last_status, last_ping;	/* mono_ms() when last sent */
	int ping_out;		/* a reply was asked for and has not come */
	int asked;		/* replies the server asked for within the second since asked_at */
	double asked_at;
	int caught_up;		/* without -f: every change up to stop_at is written */
	int streaming;		/* in COPY BOTH: status updates may be sent */
	struct value *vals, *olds;
	int vcap;
	PGconn *catalog;	/* an ordinary connection for catalog queries while streaming */
	struct seen {		/* per table: the schema last emitted (--schema-events) */
		uint32_t oid;
		char *emitted;
	} *seen;
	int nseen;
	/* the reports (logical-report.c) */
	struct reporter rep;
	unsigned long reconnects;	/* replication connections made anew after one was lost */
	uint64_t start_end;	/* at connecting: the server's WAL end (pg_current_wal_lsn()) */
	uint64_t start_confirmed;	/* and the slot's confirmed_flush_lsn */
	int behind;		/* no keepalive since the last Begin: the server may have more to send */
};

/* 2000-01-01, PostgreSQL's epoch, in Unix milliseconds */
#define PG_EPOCH_MS 946684800000LL

/* logical.c */
void *xcalloc(size_t n, size_t size);
void lsn_text(char *buf, size_t size, uint64_t lsn);
/* An LSN as PostgreSQL writes it ("16/B374D848"); 0 if s is NULL or malformed. */
uint64_t lsn_parse(const char *s);
/* --snapshot: each emitted table's rows as op "r", under the exported snapshot if any. */
int logical_snapshot(struct logical *s, const char *exported);

/* logical-catalog.c */
/* A simple query (a walsender takes no extended protocol); NULL after logging. */
PGresult *query(PGconn *conn, const char *sql, ExecStatusType want);
/* fmt with its %s replaced by lit quoted as a literal for conn, run as query(). */
PGresult *query_lit(PGconn *conn, const char *fmt, const char *lit, ExecStatusType want);
/* The publication exists and holds the -t tables (made so with --create-slot). */
int ensure_publication(struct logical *s);
/* The publication publishes every kind of change, or a warning says what it leaves out. */
int publish_all(struct logical *s);
/* The published tables, their keys, the -t tables among them, and the domains. */
int load_tables(struct logical *s);
/* Is the table with this oid and schema.table name among those to emit? */
int wanted(const struct logical *s, uint32_t oid, const char *name);
enum kind type_kind(const struct logical *s, uint32_t type);

/* logical-slot.c */
/*
 * Connect; the first time also set up the publication, catalog, slot and
 * snapshot; then start streaming.  With -f retries with backoff until it
 * works or a signal comes; without, gives a busy slot 10 s to become free.
 */
int connect_stream(struct logical *s, int first);

/* logical-schema.c */
/* The catalog connection, (re)made as needed; NULL after logging. */
PGconn *catalog_conn(struct logical *s);
/* What is known of table oid, looked up in the catalog if it joined the publication since. */
const struct table_info *info_of(struct logical *s, uint32_t oid, const char *name);
/* --schema-events: rel->schema from its Relation message's columns; -1 after logging. */
int relation_schema(struct logical *s, struct relation *rel);
/* The schema event of rel, if due, before its change at lsn. */
void schema_before(struct logical *s, const struct relation *rel, uint64_t lsn);
/* The schema emitted for table oid (the snapshot's), taking schema over. */
void schema_emitted(struct logical *s, uint32_t oid, char *schema);

/* logical-report.c */
int logical_report_open(struct logical *s);
/* The last report and STOPPING=1: -1 when the report could not be written. */
int logical_report_close(struct logical *s);

/* logical-decode.c */
/* One CopyData message of the stream: 0, -1 on error, -2 to give the connection up. */
int on_copy_data(struct logical *s, const char *buf, int len);
void rel_clear(struct relation *rel);

/* logical-stream.c */
/* emitter.room: lines that may be written before the window is full; waits, sending status. */
long room(struct emitter *e);
/* A mark: once every line so far is durable, lsn may be confirmed. */
void mark_push(struct logical *s, uint64_t lsn);
/* Between transactions with every line durable, confirm the server's idle progress. */
void durable_idle(struct logical *s);
/* A keepalive: the server's WAL end, and whether it asked for a reply; -2 to give up. */
int on_keepalive(struct logical *s, uint64_t end, int reply);
/* Standby status update; reply asks the server for a keepalive back. */
int send_status(struct logical *s, int reply);
/* Read the stream until a signal, or without -f until caught up; reconnects with -f. */
int stream(struct logical *s);
/* After the stream: wait for the last acknowledgements and confirm them. */
int finish(struct logical *s);
/* A clean stop: CopyDone, then read what the server still sends until it ends the stream. */
void stream_end(struct logical *s);

#endif
