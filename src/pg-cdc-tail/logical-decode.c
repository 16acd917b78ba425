/*
 * pg-cdc-tail logical mode: pgoutput messages (protocol version 1) to CDC
 * events.  Begin and Commit frame a transaction, whose commit LSN becomes a
 * mark of the ack window; Relation describes a table before its first
 * change; Insert, Update, Delete and Truncate become events.  Values are
 * rendered by pgoutput.c.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "jsonout.h"
#include "log.h"
#include "logical.h"

/* A cursor over one message; reading past its end marks it bad. */
struct reader {
	const unsigned char *p, *end;
	int bad;
};

static uint64_t
get_n(struct reader *r, int n)
{
	uint64_t v = 0;

	if (r->end - r->p < n) {
		r->bad = 1;
		r->p = r->end;
		return 0;
	}
	while (n-- > 0)
		v = v << 8 | *r->p++;
	return v;
}

static const char *
get_str(struct reader *r)
{
	const char *s = (const char *)r->p;
	const unsigned char *nul = memchr(r->p, '\0', r->end - r->p);

	if (nul == NULL) {
		r->bad = 1;
		r->p = r->end;
		return "";
	}
	r->p = nul + 1;
	return s;
}

/* Read a TupleData into s->olds (old) or s->vals; its column count, or -1 if malformed. */
static int
read_tuple(struct logical *s, struct reader *r, int old)
{
	int n = (int)get_n(r, 2), i;
	struct value *vals;

	if (n > s->vcap) {
		s->vals = realloc(s->vals, n * sizeof *s->vals);
		s->olds = realloc(s->olds, n * sizeof *s->olds);
		if (s->vals == NULL || s->olds == NULL)
			die("out of memory");
		s->vcap = n;
	}
	vals = old ? s->olds : s->vals;
	for (i = 0; i < n && !r->bad; i++) {
		struct value *v = &vals[i];

		v->kind = (char)get_n(r, 1);
		v->len = 0;
		v->data = NULL;
		if (v->kind == 't') {
			v->len = get_n(r, 4);
			if ((size_t)(r->end - r->p) < v->len) {
				r->bad = 1;
				break;
			}
			v->data = (const char *)r->p;
			r->p += v->len;
		} else if (v->kind != 'n' && v->kind != 'u') {
			r->bad = 1;	/* binary values were never asked for */
		}
	}
	return r->bad ? -1 : n;
}

/*
 * One event.  before/after may be NULL; old_full says the old tuple is the
 * whole row (REPLICA IDENTITY FULL) rather than the identity columns.
 * old_key, the old tuple of a key change, makes the insert of the new key
 * name the key it replaces (and, when whole, fill its unchanged values).
 */
static void
put_event(struct logical *s, char op, const struct relation *rel, uint64_t lsn,
    const struct value *before, int old_full, const struct value *after,
    const struct value *old_key, int n)
{
	const struct value *fill = old_full ? (before ? before : old_key) : NULL;
	FILE *out = s->e.out;
	int i, any = 0;

	schema_before(s, rel, lsn);
	fprintf(out, "{\"op\":\"%c\"", op);
	fputs(rel->prefix, out);
	put_key(out, rel, after ? after : before, n);
	if (old_key) {
		fputs(",\"old_key\":", out);
		put_key(out, rel, old_key, n);
	}
	fputs(",\"before\":", out);
	if (before)
		put_row(out, rel, before, n, !old_full, NULL);
	else
		fputs("null", out);
	fputs(",\"after\":", out);
	if (after)
		put_row(out, rel, after, n, 0, fill);
	else
		fputs("null", out);
	for (i = 0; after && i < n && i < rel->ncols; i++) {
		if (after[i].kind != 'u' || (fill && fill[i].kind != 'u'))
			continue;
		fputs(any++ ? "," : ",\"unchanged\":[", out);
		json_put_string(out, rel->cols[i].name, strlen(rel->cols[i].name));
	}
	if (any)
		fputc(']', out);
	fprintf(out, ",\"pos\":%" PRIu64 ",\"txid\":%" PRIu32 ",\"ts_ms\":%" PRId64 "}\n",
	    lsn, s->xid, s->ts_ms);
	s->e.lines++;
	s->e.pos = lsn;
}

static struct relation *
find_rel(struct logical *s, uint32_t oid)
{
	int i;

	for (i = 0; i < s->nrels; i++)
		if (s->rels[i].oid == oid)
			return &s->rels[i];
	return NULL;
}

void
rel_clear(struct relation *rel)
{
	int i;

	for (i = 0; i < rel->ncols; i++)
		free(rel->cols[i].name);
	free(rel->cols);
	free(rel->key);
	free(rel->prefix);
	free(rel->schema);
	memset(rel, 0, sizeof *rel);
}

/* The relation oid's entry, new and empty, or cleared of what was known of it. */
static struct relation *
rel_entry(struct logical *s, uint32_t oid)
{
	struct relation *rel = find_rel(s, oid);

	if (rel == NULL) {
		struct relation *grown = realloc(s->rels, (s->nrels + 1) * sizeof *s->rels);

		if (grown == NULL)
			die("out of memory");
		s->rels = grown;
		rel = &s->rels[s->nrels++];
		memset(rel, 0, sizeof *rel);
	} else {
		rel_clear(rel);
	}
	rel->oid = oid;
	return rel;
}

/* The key of rel's events: the primary key; without one, the replica identity. */
static void
rel_key(struct relation *rel, const struct table_info *info)
{
	int i, j;

	for (j = 0; info && j < info->npk; j++) {
		for (i = 0; i < rel->ncols && strcmp(rel->cols[i].name, info->pk[j]) != 0; i++)
			;
		if (i < rel->ncols)
			rel->key[rel->nkey++] = i;
	}
	if (rel->nkey == 0)
		for (i = 0; i < rel->ncols; i++)
			if (rel->cols[i].ident)
				rel->key[rel->nkey++] = i;
}

/*
 * A Relation message: the table's columns, replacing what was known of it.
 * A table emitted that was not published at start has its key looked up,
 * and with --schema-events every emitted one its schema; when the catalog
 * cannot be read, -2 gives the connection up, to hear the message again.
 */
static int
on_relation(struct logical *s, struct reader *r)
{
	uint32_t oid = get_n(r, 4);
	const char *nsp = get_str(r), *name = get_str(r);
	struct relation *rel = rel_entry(s, oid);
	const struct table_info *info = NULL;
	char *full = xcalloc(strlen(nsp) + strlen(name) + 12, 1);
	int i, rc = 0;

	get_n(r, 1);	/* replica identity setting: the flags below say it per column */
	sprintf(full, "%s.%s", *nsp ? nsp : "pg_catalog", name);
	rel->emit = wanted(s, oid, full);
	rel->prefix = event_prefix(full);
	rel->ncols = (int)get_n(r, 2);
	rel->cols = xcalloc(rel->ncols, sizeof *rel->cols);
	rel->key = xcalloc(rel->ncols, sizeof *rel->key);
	for (i = 0; i < rel->ncols && !r->bad; i++) {
		struct column *c = &rel->cols[i];

		c->ident = get_n(r, 1) & 1;
		c->name = xstrdup(get_str(r));
		c->type = get_n(r, 4);
		c->typmod = (int32_t)get_n(r, 4);
		c->kind = type_kind(s, c->type);
	}
	if (r->bad)
		rc = -1;
	else if (rel->emit && (info = info_of(s, oid, full)) == NULL)
		rc = -2;
	else if (rel->emit && s->opt->schema_events && relation_schema(s, rel) < 0)
		rc = -2;
	if (rc == 0)
		rel_key(rel, info);
	free(full);
	return rc;
}

static int
on_change(struct logical *s, char type, struct reader *r, uint64_t lsn)
{
	struct relation *rel = find_rel(s, get_n(r, 4));
	struct value *newv = NULL, *oldv = NULL;
	int n = 0, old_full = 0;
	char tag;

	if (rel == NULL) {
		log_error("change to a relation the server did not describe");
		return -1;
	}
	tag = (char)get_n(r, 1);
	if (type != 'I' && (tag == 'K' || tag == 'O')) {
		old_full = tag == 'O';
		if ((n = read_tuple(s, r, 1)) < 0)
			return -1;
		oldv = s->olds;
		if (type == 'U')
			tag = (char)get_n(r, 1);
	}
	if (type != 'D') {
		if (tag != 'N' || (n = read_tuple(s, r, 0)) < 0)
			return -1;
		newv = s->vals;
	}
	if (r->bad)
		return -1;
	if (!rel->emit)
		return 0;
	if (type == 'I') {
		put_event(s, 'c', rel, lsn, NULL, 0, newv, NULL, n);
	} else if (type == 'D') {
		put_event(s, 'd', rel, lsn, oldv, old_full, NULL, NULL, n);
	} else if (oldv && key_changed(rel, oldv, newv, n)) {
		/* a new key is a new row: as trigger mode logs it, a delete then an insert */
		put_event(s, 'd', rel, lsn, oldv, old_full, NULL, NULL, n);
		put_event(s, 'c', rel, lsn, NULL, old_full, newv, oldv, n);
	} else {
		put_event(s, 'u', rel, lsn, oldv, old_full, newv, NULL, n);
	}
	return 0;
}

/*
 * A Truncate message: a "t" event for each of its relations that is emitted,
 * at the message's LSN.  TRUNCATE waits for the table's writers and holds
 * them off until it commits, so its LSN lies between their changes.
 */
static int
on_truncate(struct logical *s, struct reader *r, uint64_t lsn)
{
	uint32_t n = get_n(r, 4), i;
	struct relation *rel;

	get_n(r, 1);	/* CASCADE, RESTART IDENTITY: each table truncated is named */
	if (r->bad || (uint64_t)(r->end - r->p) != 4 * (uint64_t)n)
		return -1;
	for (i = 0; i < n; i++) {
		if ((rel = find_rel(s, get_n(r, 4))) == NULL) {
			log_error("truncate of a relation the server did not describe");
			return -1;
		}
		if (!rel->emit)
			continue;
		schema_before(s, rel, lsn);
		fprintf(s->e.out, "{\"op\":\"t\"%snull,\"before\":null,\"after\":null,\"pos\":%" PRIu64
		    ",\"txid\":%" PRIu32 ",\"ts_ms\":%" PRId64 "}\n", rel->prefix, lsn, s->xid, s->ts_ms);
		s->e.lines++;
		s->e.pos = lsn;
	}
	return 0;
}

/* One pgoutput message, which the server sent at WAL position lsn. */
static int
on_message(struct logical *s, struct reader *r, uint64_t lsn)
{
	char type = (char)get_n(r, 1);
	uint64_t end;
	int64_t ts;

	switch (type) {
	case 'B':
		get_n(r, 8);		/* the commit's LSN */
		ts = (int64_t)get_n(r, 8);
		s->ts_ms = ts / 1000 + PG_EPOCH_MS;
		s->xid = get_n(r, 4);
		s->in_txn = 1;
		s->behind = 1;	/* until a keepalive between transactions */
		return r->bad ? -1 : 0;
	case 'C':
		get_n(r, 1);
		get_n(r, 8);
		end = get_n(r, 8);
		if (r->bad)
			return -1;
		s->in_txn = 0;
		mark_push(s, end);
		return 0;
	case 'R':
		return on_relation(s, r);
	case 'I': case 'U': case 'D':
		return on_change(s, type, r, lsn);
	case 'T':
		return on_truncate(s, r, lsn);
	case 'Y': case 'O': case 'M':
		return 0;
	default:
		log_error("unexpected pgoutput message '%c'", type);
		return -1;
	}
}

int
on_copy_data(struct logical *s, const char *buf, int len)
{
	struct reader r = { (const unsigned char *)buf, (const unsigned char *)buf + len, 0 };
	uint64_t start, end;
	int reply, rc;

	switch (get_n(&r, 1)) {
	case 'w':
		start = get_n(&r, 8);
		end = get_n(&r, 8);
		get_n(&r, 8);
		if (end > s->received)
			s->received = end;
		if ((rc = r.bad ? -1 : on_message(s, &r, start)) == -2)
			return -2;
		if (rc < 0) {
			log_error("malformed replication message at %" PRIu64, start);
			return -1;
		}
		return 0;
	case 'k':
		end = get_n(&r, 8);
		get_n(&r, 8);
		reply = (int)get_n(&r, 1);
		return r.bad ? -1 : on_keepalive(s, end, reply);
	default:
		log_error("unexpected replication message");
		return -1;
	}
}
