/*
 * A batch of input lines: each one read is scanned, routed to the warehouse
 * table of its source table, renamed as its --map rule says, and checked
 * against that table; a line that cannot be applied keeps its reason beside
 * it, for its dead letter once the batch commits.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "upsert.h"

/* The reason of a line that is neither applied nor dead-lettered: an unmapped table's, skipped. */
static const char skip[] = "skipped";

void
batch_init(struct batch *b, size_t max)
{
	memset(b, 0, sizeof *b);
	b->max = max;
	b->off = calloc(max, sizeof *b->off);
	b->len = calloc(max, sizeof *b->len);
	b->alt = calloc(max, sizeof *b->alt);
	b->sink = calloc(max, sizeof *b->sink);
	b->ev = calloc(max, sizeof *b->ev);
	b->state = calloc(max, sizeof *b->state);
	b->why = calloc(max, sizeof *b->why);
	if (!b->off || !b->len || !b->alt || !b->sink || !b->ev || !b->state || !b->why)
		die("out of memory");
}

void
batch_clear(struct batch *b)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		free(b->why[i]);
		b->why[i] = NULL;
		free(b->alt[i]);
		b->alt[i] = NULL;
		b->sink[i] = NULL;
		b->state[i] = LINE_OK;
	}
	b->n = 0;
	b->used = 0;
	b->copy_len = 0;
	b->copy_sink = NULL;
	b->copy_refused = 0;
}

void
batch_free(struct batch *b)
{
	batch_clear(b);
	free(b->text);
	free(b->copy);
	free(b->off);
	free(b->len);
	free(b->alt);
	free(b->sink);
	free(b->ev);
	free(b->state);
	free(b->why);
}

/*
 * Route and check line n of b: NULL when it applies (b->sink[n] set), or
 * the reason it does not.  *wait: a schema event whose DDL must wait for
 * the lines before it to commit (nothing is taken).
 */
static const char *
intake(struct batch *b, struct router *r, const char *line, size_t len, int *wait)
{
	size_t n = b->n, alen;
	struct scan sc;
	const char *why;
	struct sink *s;

	if ((why = event_scan(line, len, &sc)) != NULL)
		return why;
	if (sc.v[F_OP][1] == 's' && (r->opt->create || r->opt->evolve) && n > 0) {
		*wait = 1;
		return NULL;
	}
	if ((s = route(r, &sc, &why)) == NULL)
		return why ? why : skip;
	if (s->map && s->map->nren > 0 && (b->alt[n] = rename_line(line, len, s->map, &sc, &alen)) != NULL)
		line = b->alt[n];
	if (sc.v[F_OP][1] == 's') {
		/* the table's events wait for it: it may not be there yet */
		b->ev[n].op = 's';
		return schema_event(r, s, &sc);
	}
	if (why == NULL && (why = event_check(line, &sc, &s->t, &b->ev[n])) == NULL)
		b->sink[n] = s;
	return why;
}

/* Keep a copy of line as line n of b: to apply (reject NULL), skip, or dead-letter for reject. */
static void
keep_line(struct batch *b, const char *line, size_t len, const char *reject)
{
	if (b->used + len > b->cap) {
		size_t cap = b->cap ? b->cap : 1 << 16;

		while (cap < b->used + len)
			cap *= 2;
		if ((b->text = realloc(b->text, cap)) == NULL)
			die("out of memory");
		b->cap = cap;
	}
	memcpy(b->text + b->used, line, len);
	b->off[b->n] = b->used;
	b->len[b->n] = len;
	if (reject == skip)
		b->state[b->n] = LINE_SKIPPED;
	else if (reject) {
		b->state[b->n] = LINE_REJECTED;
		b->why[b->n] = xstrdup(reject);
	}
	b->used += len;
	b->n++;
}

int
batch_add(struct batch *b, struct router *r, const char *line, size_t len, int cut, size_t limit)
{
	char too_long[80];
	const char *reject = too_long;
	int wait = 0;

	snprintf(too_long, sizeof too_long, "line too long: more than %zu bytes (--batch-bytes)", limit);
	memset(&b->ev[b->n], 0, sizeof b->ev[b->n]);
	if (!cut && len <= limit)
		reject = intake(b, r, line, len, &wait);
	if (wait || r->fatal) {
		free(b->alt[b->n]);
		b->alt[b->n] = NULL;
		return wait;
	}
	keep_line(b, line, len, reject);
	return 0;
}

void
batch_refuse(struct batch *b, const char *line, size_t len, const char *why)
{
	memset(&b->ev[b->n], 0, sizeof b->ev[b->n]);
	keep_line(b, line, len, why);
}

/* The table of sink s was read again: its lines are checked again against it (its columns may differ). */
void
batch_recheck(struct batch *b, struct sink *s)
{
	struct scan sc;
	const char *why;
	size_t i;

	if (s->state != SINK_READY)
		return;
	for (i = 0; i < b->n; i++) {
		const char *line = LINE_AT(b, i);
		size_t len = b->alt[i] ? strlen(b->alt[i]) : b->len[i];

		if (b->sink[i] != s || b->state[i] != LINE_OK)
			continue;
		if ((why = event_scan(line, len, &sc)) == NULL)
			why = event_check(line, &sc, &s->t, &b->ev[i]);
		if (why) {
			b->sink[i] = NULL;
			b->state[i] = LINE_REJECTED;
			b->why[i] = xstrdup(why);
		}
	}
}
