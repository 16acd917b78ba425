/*
 * Checking an input line: is it an event the target table can take, and
 * where do its parts lie.  The line is scanned once, without a tree; the
 * database parses the row itself.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "jsonwalk.h"
#include "log.h"
#include "upsert.h"

static const char *const fields[NFIELDS] = {
	"op", "pos", "key", "after", "before", "ts_ms", "unchanged", "old_key", "table", "columns",
	"primary_key"
};

static int
is_null(const char *v, size_t len)
{
	return v == NULL || (len == 4 && memcmp(v, "null", 4) == 0);
}

/* Why the object obj lacks a key column, or NULL. */
static const char *
key_present(const char *obj, size_t len, const struct target *t, const char *what)
{
	const char *kv[64];
	size_t kl[64];
	static char buf[200];
	int i;

	if (t->nkeys > 64)
		return "too many key columns";
	row_fields(obj, len, t->keys, t->klens, t->nkeys, kv, kl);
	for (i = 0; i < t->nkeys; i++) {
		if (is_null(kv[i], kl[i])) {
			snprintf(buf, sizeof buf, "missing key: no value for key column \"%.100s\" in \"%s\"",
			    t->keys[i], what);
			return buf;
		}
	}
	return NULL;
}

/* True when the object holds no member but key columns: a delete's old key, not its old row. */
static int
key_only(const char *obj, size_t len, const struct target *t)
{
	const char *kv[64];
	size_t kl[64];
	int members, found = 0, i;

	members = row_fields(obj, len, t->keys, t->klens, t->nkeys, kv, kl);
	for (i = 0; i < t->nkeys; i++)
		found += kv[i] != NULL;
	return members == found;
}

/* Why the members that are not the row are wrong, or NULL. */
static const char *
members_check(const char *const *v, const size_t *vl)
{
	if (v[F_OP] == NULL || vl[F_OP] != 3 || v[F_OP][0] != '"' || !strchr("cudrts", v[F_OP][1]) ||
	    v[F_OP][2] != '"')
		return "not an event: \"op\" is not one of c, u, d, r, t, s";
	if (v[F_POS] == NULL || vl[F_POS] > 20 || strspn(v[F_POS], "0123456789") != vl[F_POS] ||
	    (vl[F_POS] == 20 && memcmp(v[F_POS], "18446744073709551615", 20) > 0))
		return "not an event: \"pos\" is not an unsigned 64-bit integer";
	if (!is_null(v[F_TS], vl[F_TS]) && strspn(v[F_TS], "-0123456789") != vl[F_TS])
		return "not an event: \"ts_ms\" is not an integer";
	if (!is_null(v[F_UNCHANGED], vl[F_UNCHANGED]) && v[F_UNCHANGED][0] != '[')
		return "not an event: \"unchanged\" is not an array of column names";
	if (!is_null(v[F_OLD_KEY], vl[F_OLD_KEY]) && v[F_OLD_KEY][0] != '{')
		return "not an event: \"old_key\" is not an object";
	if (!is_null(v[F_TABLE], vl[F_TABLE]) && v[F_TABLE][0] != '"')
		return "not an event: \"table\" is not a string";
	return NULL;
}

/* A schema event: the table's columns and key, no row. */
static const char *
schema_check(const char **v, const size_t *vl)
{
	if (!is_null(v[F_KEY], vl[F_KEY]) || !is_null(v[F_BEFORE], vl[F_BEFORE]) ||
	    !is_null(v[F_AFTER], vl[F_AFTER]))
		return "not an event: a schema event has no \"key\", \"before\" or \"after\"";
	if (v[F_COLUMNS] == NULL || v[F_COLUMNS][0] != '[')
		return "not an event: a schema event has no \"columns\" array";
	if (v[F_PKEY] == NULL || v[F_PKEY][0] != '[')
		return "not an event: a schema event has no \"primary_key\" array";
	return NULL;
}

/* A truncate: no key, no row; its pos bounds the rows it removes. */
static const char *
truncate_check(const char *line, const char *const *v, const size_t *vl, struct ev *ev)
{
	if (!is_null(v[F_KEY], vl[F_KEY]) || !is_null(v[F_BEFORE], vl[F_BEFORE]) ||
	    !is_null(v[F_AFTER], vl[F_AFTER]))
		return "not an event: a truncate has no \"key\", \"before\" or \"after\"";
	memset(ev, 0, sizeof *ev);
	ev->op = 't';
	ev->pos = (size_t)(v[F_POS] - line);
	ev->pos_len = vl[F_POS];
	if (!is_null(v[F_TS], vl[F_TS])) {
		ev->ts = (size_t)(v[F_TS] - line);
		ev->ts_len = vl[F_TS];
	}
	return NULL;
}

/* Does the row have members the table has no column for (they go to its extra column)? */
static int
has_extra(const char *row, size_t len, const struct target *t)
{
	const char *cv[256];
	size_t cl[256];
	int members, found = 0, i;

	if (t->ncols == 0)
		return 0;
	members = row_fields(row, len, t->cols, t->clens, t->ncols, cv, cl);
	for (i = 0; i < t->ncols; i++)
		found += cv[i] != NULL;
	return members > found;
}

/* The member that is the row to apply: after, a delete's old row, or only its key. */
static int
row_member(const char *const *v, const size_t *vl, const struct target *t)
{
	if (v[F_OP][1] != 'd')
		return F_AFTER;
	/* an old row of key columns only (logical capture's default replica identity) is no row */
	if (v[F_BEFORE] && v[F_BEFORE][0] == '{' && !key_only(v[F_BEFORE], vl[F_BEFORE], t))
		return F_BEFORE;
	return F_KEY;
}

static void
locate(const char *line, const char *const *v, const size_t *vl, int row, struct ev *ev)
{
	ev->op = row == F_KEY ? 'k' : v[F_OP][1];
	ev->row = (size_t)(v[row] - line);
	ev->row_len = vl[row];
	ev->pos = (size_t)(v[F_POS] - line);
	ev->pos_len = vl[F_POS];
	ev->ts = v[F_TS] ? (size_t)(v[F_TS] - line) : 0;
	ev->ts_len = is_null(v[F_TS], vl[F_TS]) ? 0 : vl[F_TS];
	/* logical capture names the unchanged TOASTed columns it could not send */
	ev->un_len = ev->ok_len = 0;
	if (row == F_AFTER && !is_null(v[F_UNCHANGED], vl[F_UNCHANGED])) {
		ev->un = (size_t)(v[F_UNCHANGED] - line);
		ev->un_len = vl[F_UNCHANGED];
	}
	/* an update that changed the key: the key its unchanged columns come from */
	if (row == F_AFTER && !is_null(v[F_OLD_KEY], vl[F_OLD_KEY])) {
		ev->ok = (size_t)(v[F_OLD_KEY] - line);
		ev->ok_len = vl[F_OLD_KEY];
	}
}

/* Why a line is not an event at all, or NULL: then sc locates its members. */
const char *
event_scan(const char *line, size_t len, struct scan *sc)
{
	const char *why, *p = line;

	if ((why = json_scan_fields(line, len, fields, NFIELDS, sc->v, sc->vl)) != NULL)
		return why;
	while (*p == ' ' || *p == '\t' || *p == '\r')
		p++;
	if (*p != '{')
		return "not an event: not a JSON object";
	if ((why = members_check(sc->v, sc->vl)) != NULL)
		return why;
	if (sc->v[F_OP][1] == 's')
		return schema_check(sc->v, sc->vl);
	return NULL;
}

/* Why a scanned event is not one the target can take, or NULL. */
const char *
event_check(const char *line, const struct scan *sc, const struct target *t, struct ev *ev)
{
	const char *const *v = sc->v, *why;
	const size_t *vl = sc->vl;
	int row;

	if (v[F_OP][1] == 's') {
		memset(ev, 0, sizeof *ev);
		ev->op = 's';
		return NULL;
	}
	if (v[F_OP][1] == 't')
		return truncate_check(line, v, vl, ev);
	if (v[F_KEY] == NULL || v[F_KEY][0] != '{')
		return "missing key: no \"key\" object";
	if (v[F_OP][1] != 'd' && (v[F_AFTER] == NULL || v[F_AFTER][0] != '{'))
		return "not an event: no \"after\" row";
	if ((why = key_present(v[F_KEY], vl[F_KEY], t, "key")) != NULL)
		return why;
	row = row_member(v, vl, t);
	if (row != F_KEY && (why = key_present(v[row], vl[row], t, fields[row])) != NULL)
		return why;
	if (row == F_AFTER && !is_null(v[F_OLD_KEY], vl[F_OLD_KEY]) &&
	    (why = key_present(v[F_OLD_KEY], vl[F_OLD_KEY], t, "old_key")) != NULL)
		return why;
	locate(line, v, vl, row, ev);
	ev->extra = row != F_KEY && has_extra(v[row], vl[row], t);
	return NULL;
}

/* Which of names[0..n) the member name tok (quotes included) is, or -1. */
static int
name_index(const char *tok, size_t len, char *const *names, const size_t *lens, int n)
{
	char *plain;
	int i;

	if (memchr(tok + 1, '\\', len - 2) == NULL) {
		for (i = n - 1; i >= 0; i--)
			if (lens[i] == len - 2 && names[i][0] == tok[1] && memcmp(names[i], tok + 1, len - 2) == 0)
				return i;
		return -1;
	}
	if ((plain = json_string_dup(tok, len)) == NULL)
		return -1;
	for (i = n - 1; i >= 0 && strcmp(names[i], plain) != 0; i--)
		;
	free(plain);
	return i;
}

int
row_fields(const char *obj, size_t len, char *const *names, const size_t *lens, int n,
    const char **vals, size_t *vlens)
{
	struct jiter it;
	const char *name, *val;
	size_t nlen, vlen;
	int i, members = 0;

	for (i = 0; i < n; i++)
		vals[i] = NULL;
	jw_open(&it, obj, len);
	while (it.object && jw_next(&it, &name, &nlen, &val, &vlen)) {
		members++;
		if ((i = name_index(name, nlen, names, lens, n)) >= 0) {
			vals[i] = val;
			vlens[i] = vlen;
		}
	}
	return members;
}

size_t *
name_lengths(char *const *names, int n)
{
	size_t *lens;
	int i;

	if (n == 0)
		return NULL;
	if ((lens = calloc(n, sizeof *lens)) == NULL)
		die("out of memory");
	for (i = 0; i < n; i++)
		lens[i] = strlen(names[i]);
	return lens;
}

char *
json_string_dup(const char *val, size_t len)
{
	char *s;
	long n;

	if (val == NULL || len < 2 || val[0] != '"')
		return NULL;
	if ((s = malloc(len)) == NULL)
		die("out of memory");
	/* decoded, a string is never longer than its JSON text without the quotes */
	n = json_key_text(val, len, s, len - 1);
	if (n < 0 || memchr(s, '\0', (size_t)n)) {
		free(s);
		return NULL;
	}
	s[n] = '\0';
	return s;
}
