/*
 * Routing: which warehouse table an event's "table" goes to.  --map rules
 * name the pairs (explicit ones first, then patterns in the order given);
 * -t binds its table to the first source table seen.  A warehouse table only
 * ever takes the events of one source table, so its guard column compares
 * positions of one table's changes; an event of a table that maps nowhere is
 * never applied: it is dead-lettered, or skipped and counted.
 */
#include <stdarg.h>
#include <stdnoreturn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "log.h"
#include "pgconn.h"
#include "sig.h"
#include "upsert.h"

#define MAX_SOURCES 10000	/* source tables remembered; more are dead-lettered */

/* A source table seen in the input, and where its events go. */
struct source {
	char *raw;		/* the "table" member as it was spelled, quotes included */
	size_t rawlen;
	char *name;		/* decoded */
	struct sink *sink;	/* NULL: not applied */
	char *refuse;		/* with sink NULL: the dead letter's reason; NULL: skipped */
	unsigned long long skipped;
	struct source *next;
};

/* s quoted as an SQL identifier: the names are decoded JSON, valid UTF-8 without NUL. */
static char *
quote_ident(const char *s)
{
	char *q = malloc(2 * strlen(s) + 3), *w = q;

	if (q == NULL)
		die("out of memory");
	*w++ = '"';
	for (; *s; s++) {
		if (*s == '"')
			*w++ = '"';
		*w++ = *s;
	}
	*w++ = '"';
	*w = '\0';
	return q;
}

char *
strf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int n;

	va_start(ap, fmt);
	n = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("out of memory");
	return s;
}

const char *
sink_name(const struct sink *s)
{
	return s->label;
}

/* The sink for schema.table, made if new. */
static struct sink *
sink_get(struct router *r, const char *schema, const char *table)
{
	struct sink *s;
	char *qs, *qt;

	for (s = r->sinks; s; s = s->next)
		if (s->schema && strcmp(s->schema, schema) == 0 && strcmp(s->table, table) == 0)
			return s;
	if ((s = calloc(1, sizeof *s)) == NULL)
		die("out of memory");
	s->schema = xstrdup(schema);
	s->table = xstrdup(table);
	qs = quote_ident(schema);
	qt = quote_ident(table);
	s->qname = strf("%s.%s", qs, qt);
	s->label = strf("%s.%s", schema, table);
	free(qs);
	free(qt);
	s->next = r->sinks;
	r->sinks = s;
	return s;
}

/* The rule for the source table name: an explicit pair, else the first pattern that fits. */
static const struct map *
map_find(const struct options *opt, const char *name, const char **tbl)
{
	const char *dot = strchr(name, '.');
	int i;

	for (i = 0; i < opt->nmaps; i++) {
		if (opt->maps[i].pattern == 0 && strcmp(opt->maps[i].src, name) == 0) {
			*tbl = dot ? dot + 1 : name;
			return &opt->maps[i];
		}
	}
	if (dot == NULL)
		return NULL;
	for (i = 0; i < opt->nmaps; i++) {
		const struct map *m = &opt->maps[i];

		if (m->pattern == 2 || (m->pattern == 1 && strlen(m->src) == (size_t)(dot - name) &&
		    memcmp(m->src, name, (size_t)(dot - name)) == 0)) {
			*tbl = dot + 1;
			return m;
		}
	}
	return NULL;
}

/* Where the events of a new source table go: src->sink, or why not in src->refuse. */
static void
source_resolve(struct router *r, struct source *src)
{
	const struct map *m;
	const char *tbl;
	struct sink *s = NULL;

	if (r->bound) {
		/* -t: its table takes the first source table seen */
		s = r->bound;
		if (s->source == NULL) {
			s->source = xstrdup(src->name);
			if (log_level >= LOG_DEBUG)
				log_info("applying %s to %s", src->name, sink_name(s));
		}
		if (strcmp(s->source, src->name) != 0)
			s = NULL;
	} else if ((m = map_find(r->opt, src->name, &tbl)) != NULL) {
		s = sink_get(r, m->dst_schema, m->dst_table ? m->dst_table : tbl);
		if (s->source == NULL) {
			s->source = xstrdup(src->name);
			s->map = m;
		} else if (strcmp(s->source, src->name) != 0) {
			src->refuse = strf("table %s maps to %s, which already takes the events of table %s",
			    src->name, sink_name(s), s->source);
			log_warning("%s: its events are dead-lettered", src->refuse);
			return;
		}
	}
	src->sink = s;
	if (s == NULL && r->opt->unmapped == UNMAPPED_DLQ)
		src->refuse = strf("no mapping for table %s", src->name);
}

/* The source table a "table" member names, remembered; NULL with *why when it cannot be. */
static struct source *
source_find(struct router *r, const char *raw, size_t rawlen, const char **why)
{
	struct source *src;
	char *name;

	if (r->last && r->last->rawlen == rawlen && memcmp(r->last->raw, raw, rawlen) == 0)
		return r->last;
	for (src = r->sources; src; src = src->next)
		if (src->rawlen == rawlen && memcmp(src->raw, raw, rawlen) == 0)
			return r->last = src;
	if ((name = json_string_dup(raw, rawlen)) == NULL) {
		*why = "not an event: \"table\" is not a string";
		return NULL;
	}
	if (r->nsources >= MAX_SOURCES) {
		free(name);
		*why = "too many source tables: more than 10000";
		return NULL;
	}
	if ((src = calloc(1, sizeof *src)) == NULL || (src->raw = malloc(rawlen)) == NULL)
		die("out of memory");
	memcpy(src->raw, raw, rawlen);
	src->rawlen = rawlen;
	src->name = name;
	source_resolve(r, src);
	src->next = r->sources;
	r->sources = src;
	r->nsources++;
	return r->last = src;
}

/*
 * One attempt at loading the sink's table: 0 when it is known (loaded,
 * missing or unfit, as its state says), -1 when the connection failed.
 */
static int
sink_try_load(struct router *r, struct sink *s)
{
	PGconn *conn = *r->conn;
	const char *params[1] = { s->qname };
	PGresult *res = PQexecParams(conn, "SELECT to_regclass($1) IS NOT NULL", 1, NULL, params, NULL, NULL, 0);
	struct target t;
	int exists;

	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		enum outcome o = pg_classify(conn, res);
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
		/* no USAGE on the schema: a grant missing, not a bad event; every event would be dead-lettered */
		int denied = state != NULL && strcmp(state, "42501") == 0;

		PQclear(res);
		if (o == TRANSIENT)
			return -1;
		log_error("cannot look up table %s: %s", sink_name(s), batch_error());
		if (denied)
			r->fatal = 1;
		s->state = SINK_UNFIT;
		s->refuse = strf("cannot look up table %s: %s", sink_name(s), batch_error());
		return 0;
	}
	exists = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
	PQclear(res);
	free(s->refuse);
	s->refuse = NULL;
	if (!exists) {
		s->state = SINK_MISSING;
		s->refuse = strf("table %s does not exist", sink_name(s));
		return 0;
	}
	memset(&t, 0, sizeof t);
	if (target_load(conn, r->opt, s->qname, &t) < 0) {
		target_free(&t);
		if (pg_conn_lost(conn))
			return -1;
		s->state = SINK_UNFIT;
		s->refuse = strf("table %s cannot take events (see the error pg-upsert logged)", sink_name(s));
		return 0;
	}
	if (s->state == SINK_READY)
		target_free(&s->t);
	s->t = t;
	s->state = SINK_READY;
	if (s->schema == NULL) {
		free(s->label);
		s->label = xstrdup(t.name);
	}
	log_debug("apply statement for %s: %s", sink_name(s), t.apply_sql);
	log_debug("statement for rows with unchanged columns: %s", t.merge_sql);
	if (t.stage_sql)
		log_debug("staged: %s; %s; %s", t.stage_sql, t.staged_sql, t.upserts_sql);
	log_debug("statement for rows with unchanged columns and key changes: %s", t.move_sql);
	log_debug("truncate statement: %s", t.trunc_sql);
	return 0;
}

/* Load the sink's table, retrying while the warehouse cannot be reached. */
static enum outcome
sink_load(struct router *r, struct sink *s)
{
	struct backoff retry = BACKOFF_INIT;
	const char *why = NULL;

	for (;;) {
		if (router_db(r, &retry, why) < 0) {
			log_error("second signal: giving up");
			return FATAL;
		}
		if (sink_try_load(r, s) == 0)
			return APPLIED;
		why = batch_error()[0] ? batch_error() : pg_errmsg(*r->conn);
	}
}

enum outcome
sink_reload(struct router *r, struct sink *s)
{
	enum outcome o;

	if (s->state != SINK_READY) {
		free(s->refuse);
		s->refuse = NULL;
	}
	o = sink_load(r, s);
	if (s->state != SINK_READY)
		log_error("%s", s->refuse);
	return o;
}

/* The sink, loaded when its first event comes. */
static struct sink *
sink_ready(struct router *r, struct sink *s, const char **why)
{
	if (s->state == SINK_NEW && sink_load(r, s) != APPLIED) {
		r->fatal = 1;
		return NULL;
	}
	*why = s->broken ? s->broken : s->refuse;
	return s;
}

struct sink *
route(struct router *r, const struct scan *sc, const char **why)
{
	const char *raw = sc->v[F_TABLE];
	struct source *src;

	*why = NULL;
	if (raw == NULL || raw[0] != '"') {
		/* -t takes events that do not name their table, as before --map */
		if (r->bound)
			return sink_ready(r, r->bound, why);
		*why = "not an event: no \"table\"";
		return NULL;
	}
	if ((src = source_find(r, raw, sc->vl[F_TABLE], why)) == NULL)
		return NULL;
	if (src->sink == NULL) {
		if ((*why = src->refuse) == NULL) {
			src->skipped++;
			r->skipped++;
		}
		return NULL;
	}
	return sink_ready(r, src->sink, why);
}

void
router_after_batch(struct router *r)
{
	struct sink *s;

	for (s = r->sinks; s; s = s->next) {
		if (s->state == SINK_MISSING) {
			s->state = SINK_NEW;
			free(s->refuse);
			s->refuse = NULL;
		}
	}
}

/*
 * -t: one sink, loaded now so that a table unfit to apply to stops pg-upsert
 * before it reads anything; with --create it may not exist yet.
 */
int
router_init(struct router *r, const struct options *opt, PGconn **conn)
{
	struct sink *s;

	memset(r, 0, sizeof *r);
	r->opt = opt;
	r->conn = conn;
	if (opt->table == NULL)
		return 0;
	if ((s = calloc(1, sizeof *s)) == NULL)
		die("out of memory");
	s->qname = xstrdup(opt->table);
	s->label = xstrdup(opt->table);
	r->sinks = r->bound = s;
	if (opt->create)
		return sink_try_load(r, s) < 0 || s->state == SINK_UNFIT ? -1 : 0;
	if (target_load(*conn, opt, s->qname, &s->t) < 0) {
		/* what was read of it before the error */
		target_free(&s->t);
		memset(&s->t, 0, sizeof s->t);
		return -1;
	}
	s->state = SINK_READY;
	free(s->label);
	s->label = xstrdup(s->t.name);
	return 0;
}

/* At exit: how many events of which tables were skipped. */
static void
router_summary(const struct router *r)
{
	const struct source *src;
	char *list = NULL, *more;

	if (r->skipped == 0)
		return;
	for (src = r->sources; src; src = src->next) {
		if (src->skipped == 0)
			continue;
		more = strf("%s%s%s (%llu)", list ? list : "", list ? ", " : "", src->name, src->skipped);
		free(list);
		list = more;
	}
	log_info("skipped %llu events of tables with no mapping: %s", r->skipped, list);
	free(list);
}

void
router_free(struct router *r)
{
	struct source *src;
	struct sink *s;

	router_summary(r);
	while ((src = r->sources) != NULL) {
		r->sources = src->next;
		free(src->raw);
		free(src->name);
		free(src->refuse);
		free(src);
	}
	while ((s = r->sinks) != NULL) {
		r->sinks = s->next;
		if (s->state == SINK_READY)
			target_free(&s->t);
		free(s->qname);
		free(s->label);
		free(s->labels);
		free(s->schema);
		free(s->table);
		free(s->source);
		free(s->refuse);
		free(s->broken);
		free(s);
	}
}

static noreturn void
bad_map(const char *arg, const char *why)
{
	usage_error("invalid value \"%s\" for option --map: %s", arg, why);
}

/* The renames in (a=b,c=d): text[0..len) between the parentheses. */
static void
parse_renames(struct map *m, const char *text, size_t len)
{
	char *list = strndup(text, len), *tok, *save = NULL, *eq;
	int i;

	if (list == NULL)
		die("out of memory");
	for (tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if ((eq = strchr(tok, '=')) == NULL || eq == tok || eq[1] == '\0' || strchr(eq + 1, '='))
			bad_map(m->arg, "a column rename is COLUMN=COLUMN");
		*eq = '\0';
		for (i = 0; i < m->nren; i++) {
			if (strcmp(m->ren[i].from, tok) == 0)
				bad_map(m->arg, "a column is renamed twice");
			if (strcmp(m->ren[i].to, eq + 1) == 0)
				bad_map(m->arg, "two columns are renamed to the same name");
		}
		if ((m->ren = realloc(m->ren, (m->nren + 1) * sizeof *m->ren)) == NULL)
			die("out of memory");
		m->ren[m->nren].from = xstrdup(tok);
		m->ren[m->nren].to = xstrdup(eq + 1);
		rename_prepare(&m->ren[m->nren++]);
	}
	if (m->nren == 0 || text[0] == ',' || text[len - 1] == ',' || strstr(list, ",,"))
		bad_map(m->arg, "a column rename is COLUMN=COLUMN");
	free(list);
}

/* SRC: schema.table, schema.* or *.* */
static void
parse_source(struct map *m, const char *src, size_t len)
{
	const char *dot = memchr(src, '.', len);

	if (len == 3 && memcmp(src, "*.*", 3) == 0) {
		m->pattern = 2;
		m->src = xstrdup("*");
		return;
	}
	if (dot == NULL || dot == src || dot == src + len - 1 || memchr(src, '*', (size_t)(dot - src)))
		bad_map(m->arg, "the source is schema.table, schema.* or *.*");
	if (dot == src + len - 2 && dot[1] == '*') {
		m->pattern = 1;
		m->src = strndup(src, (size_t)(dot - src));
	} else if (memchr(dot, '*', (size_t)(src + len - dot)))
		bad_map(m->arg, "the source is schema.table, schema.* or *.*");
	else
		m->src = strndup(src, len);
	if (m->src == NULL)
		die("out of memory");
}

/* DST: schema.table, or schema.* for a source pattern. */
static void
parse_target(struct map *m, const char *dst, size_t len)
{
	const char *dot = memchr(dst, '.', len);

	if (dot == NULL || dot == dst || dot == dst + len - 1 || memchr(dst, '*', (size_t)(dot - dst)))
		bad_map(m->arg, "the target is schema.table, or schema.* for a source pattern");
	if ((m->dst_schema = strndup(dst, (size_t)(dot - dst))) == NULL)
		die("out of memory");
	if (dot == dst + len - 2 && dot[1] == '*') {
		if (m->pattern == 0)
			bad_map(m->arg, "the target is schema.table, or schema.* for a source pattern");
		return;
	}
	if (m->pattern != 0 || memchr(dot, '*', (size_t)(dst + len - dot)))
		bad_map(m->arg, "the target is schema.table, or schema.* for a source pattern");
	if ((m->dst_table = strndup(dot + 1, (size_t)(dst + len - dot - 1))) == NULL)
		die("out of memory");
}

void
map_parse(const char *arg, struct map *m)
{
	const char *eq = strchr(arg, '='), *dst, *open;
	size_t len;

	memset(m, 0, sizeof *m);
	m->arg = arg;
	if (eq == NULL)
		bad_map(arg, "expected SRC=DST");
	parse_source(m, arg, (size_t)(eq - arg));
	dst = eq + 1;
	if ((open = strchr(dst, '(')) != NULL) {
		len = strlen(open);
		if (open[len - 1] != ')' || len < 3)
			bad_map(arg, "a column rename is COLUMN=COLUMN");
		parse_renames(m, open + 1, len - 2);
	}
	parse_target(m, dst, open ? (size_t)(open - dst) : strlen(dst));
}

/* Each table has one explicit rule at most. */
void
maps_check(const struct map *maps, int n)
{
	int i, j;

	for (i = 0; i < n; i++)
		for (j = 0; j < i; j++)
			if (maps[i].pattern == 0 && maps[j].pattern == 0 && strcmp(maps[i].src, maps[j].src) == 0)
				usage_error("table \"%s\" is mapped twice (--map)", maps[i].src);
}

void
map_free(struct map *m)
{
	int i;

	for (i = 0; i < m->nren; i++) {
		free(m->ren[i].from);
		free(m->ren[i].to);
		free(m->ren[i].tojson);
	}
	free(m->ren);
	free(m->src);
	free(m->dst_schema);
	free(m->dst_table);
}
