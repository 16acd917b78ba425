/*
 * Column renames of a --map rule, done on the line before the database sees
 * it: the member names of the rows, the key and the old key, the names in
 * "unchanged" and those of a schema event become the warehouse's, so the
 * statements built from the warehouse table's catalog apply as they are.
 * Every byte but the renamed names is copied unchanged.  Lines reach here
 * validated and scanned, so the walk below only visits the members the scan
 * found and only has to find where values end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonout.h"
#include "jsonwalk.h"
#include "log.h"
#include "upsert.h"

/* The renames found: where each renamed name lies in the line, and its rename. */
struct edit {
	size_t at, len;
	const struct rename *r;
};

struct rewrite {
	const struct map *m;
	const char *line;
	struct edit *e;
	size_t n, cap;
};

void
rename_prepare(struct rename *r)
{
	size_t len;
	FILE *f = open_memstream(&r->tojson, &len);

	if (f == NULL)
		die("out of memory");
	json_put_string(f, r->to, strlen(r->to));
	if (fclose(f) != 0)
		die("out of memory");
	r->tojlen = len;
	r->flen = strlen(r->from);
}

/*
 * Is the JSON string tok (quotes included) the name s, of length slen?
 * Compared in place when it has no escape, which is nearly always: this
 * runs for every member of every row.
 */
static int
token_is(const char *tok, size_t len, const char *s, size_t slen)
{
	char *plain;
	int is;

	if (memchr(tok + 1, '\\', len - 2) == NULL)
		return len - 2 == slen && memcmp(tok + 1, s, slen) == 0;
	plain = json_string_dup(tok, len);
	is = plain && strcmp(plain, s) == 0;
	free(plain);
	return is;
}

/* Note the JSON string tok (quotes included) for replacement when a rename's source names it. */
static void
rename_token(struct rewrite *w, const char *tok, size_t len)
{
	int i;

	if (len < 2)
		return;
	for (i = 0; i < w->m->nren; i++) {
		if (token_is(tok, len, w->m->ren[i].from, w->m->ren[i].flen)) {
			if (w->n == w->cap) {
				w->cap = w->cap ? 2 * w->cap : 16;
				if ((w->e = realloc(w->e, w->cap * sizeof *w->e)) == NULL)
					die("out of memory");
			}
			w->e[w->n++] = (struct edit){ (size_t)(tok - w->line), len, &w->m->ren[i] };
			return;
		}
	}
}

/* The member names of an object (a row, a key). */
static void
rename_members(struct rewrite *w, const char *obj, size_t len)
{
	struct jiter it;
	const char *name, *val;
	size_t nlen, vlen;

	jw_open(&it, obj, len);
	if (!it.object)
		return;
	while (jw_next(&it, &name, &nlen, &val, &vlen))
		rename_token(w, name, nlen);
}

/* The strings of an array ("unchanged", "primary_key"). */
static void
rename_elements(struct rewrite *w, const char *arr, size_t len)
{
	struct jiter it;
	const char *name, *val;
	size_t nlen, vlen;

	jw_open(&it, arr, len);
	if (it.object)
		return;
	while (jw_next(&it, &name, &nlen, &val, &vlen))
		if (*val == '"')
			rename_token(w, val, vlen);
}

/* The "name" of each column of a schema event. */
static void
rename_columns(struct rewrite *w, const char *arr, size_t len)
{
	struct jiter it, col;
	const char *name, *val, *cname, *cval;
	size_t nlen, vlen, cnlen, cvlen;

	jw_open(&it, arr, len);
	if (it.object)
		return;
	while (jw_next(&it, &name, &nlen, &val, &vlen)) {
		jw_open(&col, val, vlen);
		if (!col.object)
			continue;
		while (jw_next(&col, &cname, &cnlen, &cval, &cvlen))
			if (token_is(cname, cnlen, "name", 4) && *cval == '"')
				rename_token(w, cval, cvlen);
	}
}

static int
edit_order(const void *a, const void *b)
{
	const struct edit *x = a, *y = b;

	return x->at < y->at ? -1 : x->at > y->at;
}

/* Where offset at of the line lies in the rewritten one: moved by the edits before it. */
static size_t
moved(const struct rewrite *w, size_t at)
{
	size_t i, to = at;

	for (i = 0; i < w->n && w->e[i].at < at; i++)
		to += w->e[i].r->tojlen - w->e[i].len;
	return to;
}

/* The line with the edits made, sc moved onto it. */
static char *
rewrite(const struct rewrite *w, size_t len, struct scan *sc, size_t *outlen)
{
	size_t i, done = 0, o = 0, size = len + 1;
	char *out;
	int f;

	for (i = 0; i < w->n; i++)
		size += w->e[i].r->tojlen;
	if ((out = malloc(size)) == NULL)
		die("out of memory");
	for (i = 0; i < w->n; i++) {
		memcpy(out + o, w->line + done, w->e[i].at - done);
		o += w->e[i].at - done;
		memcpy(out + o, w->e[i].r->tojson, w->e[i].r->tojlen);
		o += w->e[i].r->tojlen;
		done = w->e[i].at + w->e[i].len;
	}
	memcpy(out + o, w->line + done, len - done);
	o += len - done;
	out[o] = '\0';
	*outlen = o;
	for (f = 0; f < NFIELDS; f++) {
		size_t at, end;

		if (sc->v[f] == NULL)
			continue;
		at = (size_t)(sc->v[f] - w->line);
		end = moved(w, at + sc->vl[f]);
		at = moved(w, at);
		sc->v[f] = out + at;
		sc->vl[f] = end - at;
	}
	return out;
}

char *
rename_line(const char *line, size_t len, const struct map *m, struct scan *sc, size_t *outlen)
{
	static const int objects[] = { F_AFTER, F_BEFORE, F_KEY, F_OLD_KEY };
	struct rewrite w = { m, line, NULL, 0, 0 };
	char *out = NULL;
	size_t i;

	for (i = 0; i < sizeof objects / sizeof *objects; i++)
		if (sc->v[objects[i]])
			rename_members(&w, sc->v[objects[i]], sc->vl[objects[i]]);
	if (sc->v[F_UNCHANGED])
		rename_elements(&w, sc->v[F_UNCHANGED], sc->vl[F_UNCHANGED]);
	if (sc->v[F_PKEY])
		rename_elements(&w, sc->v[F_PKEY], sc->vl[F_PKEY]);
	if (sc->v[F_COLUMNS])
		rename_columns(&w, sc->v[F_COLUMNS], sc->vl[F_COLUMNS]);
	if (w.n > 0) {
		qsort(w.e, w.n, sizeof *w.e, edit_order);
		out = rewrite(&w, len, sc, outlen);
	}
	free(w.e);
	return out;
}
