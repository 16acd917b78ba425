/*
 * Checking an input line: is it an event the target table can take, and
 * where do its parts lie.  The line is scanned once, without a tree; the
 * database parses the row itself.
 */
#include <stdio.h>
#include <string.h>

#include "jsonscan.h"
#include "upsert.h"

enum { F_OP, F_POS, F_KEY, F_AFTER, F_BEFORE, F_TS, F_UNCHANGED, F_OLD_KEY, NFIELDS };

static const char *const fields[NFIELDS] = {
	"op", "pos", "key", "after", "before", "ts_ms", "unchanged", "old_key"
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
	json_scan_fields(obj, len, (const char *const *)t->keys, t->nkeys, kv, kl);
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
	int members = 0, found = 0, i;

	json_scan_members(obj, len, (const char *const *)t->keys, t->nkeys, kv, kl, &members);
	for (i = 0; i < t->nkeys; i++)
		found += kv[i] != NULL;
	return members == found;
}

/* Why the members that are not the row are wrong, or NULL. */
static const char *
members_check(const char **v, const size_t *vl)
{
	if (v[F_OP] == NULL || vl[F_OP] != 3 || v[F_OP][0] != '"' || !strchr("cudrt", v[F_OP][1]) ||
	    v[F_OP][2] != '"')
		return "not an event: \"op\" is not one of c, u, d, r, t";
	if (v[F_POS] == NULL || vl[F_POS] > 20 || strspn(v[F_POS], "0123456789") != vl[F_POS] ||
	    (vl[F_POS] == 20 && memcmp(v[F_POS], "18446744073709551615", 20) > 0))
		return "not an event: \"pos\" is not an unsigned 64-bit integer";
	if (!is_null(v[F_TS], vl[F_TS]) && strspn(v[F_TS], "-0123456789") != vl[F_TS])
		return "not an event: \"ts_ms\" is not an integer";
	if (!is_null(v[F_UNCHANGED], vl[F_UNCHANGED]) && v[F_UNCHANGED][0] != '[')
		return "not an event: \"unchanged\" is not an array of column names";
	if (!is_null(v[F_OLD_KEY], vl[F_OLD_KEY]) && v[F_OLD_KEY][0] != '{')
		return "not an event: \"old_key\" is not an object";
	return NULL;
}

/* A truncate: no key, no row; its pos bounds the rows it removes. */
static const char *
truncate_check(const char *line, const char **v, const size_t *vl, struct ev *ev)
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
	json_scan_members(row, len, (const char *const *)t->cols, t->ncols, cv, cl, &members);
	for (i = 0; i < t->ncols; i++)
		found += cv[i] != NULL;
	return members > found;
}

/* The member that is the row to apply: after, a delete's old row, or only its key. */
static int
row_member(const char **v, const size_t *vl, const struct target *t)
{
	if (v[F_OP][1] != 'd')
		return F_AFTER;
	/* an old row of key columns only (logical capture's default replica identity) is no row */
	if (v[F_BEFORE] && v[F_BEFORE][0] == '{' && !key_only(v[F_BEFORE], vl[F_BEFORE], t))
		return F_BEFORE;
	return F_KEY;
}

static void
locate(const char *line, const char **v, const size_t *vl, int row, struct ev *ev)
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

/* Why a line is not an event the target can take, or NULL. */
const char *
event_check(const char *line, size_t len, const struct target *t, struct ev *ev)
{
	const char *v[NFIELDS], *why, *p = line;
	size_t vl[NFIELDS];
	int row;

	if ((why = json_scan_fields(line, len, fields, NFIELDS, v, vl)) != NULL)
		return why;
	while (*p == ' ' || *p == '\t' || *p == '\r')
		p++;
	if (*p != '{')
		return "not an event: not a JSON object";
	if ((why = members_check(v, vl)) != NULL)
		return why;
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
