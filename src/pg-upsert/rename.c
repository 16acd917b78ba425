/*
 * Column renames of a --map rule, done on the line before the database sees
 * it: the member names of the rows, the key and the old key, the names in
 * "unchanged" and those of a schema event become the warehouse's, so the
 * statements built from the warehouse table's catalog apply as they are.
 * Every byte but the renamed names is copied unchanged.  Lines reach here
 * validated, so the walk below only has to find where values end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonout.h"
#include "log.h"
#include "upsert.h"

/* The end of the string starting at p (its opening quote). */
static const char *
string_end(const char *p, const char *end)
{
	for (p++; p < end && *p != '"'; p++)
		if (*p == '\\')
			p++;
	return p < end ? p + 1 : end;
}

/* The end of the JSON value starting at p. */
static const char *
value_end(const char *p, const char *end)
{
	int depth = 0;

	if (*p == '"')
		return string_end(p, end);
	if (*p != '{' && *p != '[') {
		while (p < end && !strchr(",}] \t\r\n", *p))
			p++;
		return p;
	}
	while (p < end) {
		if (*p == '"') {
			p = string_end(p, end);
			continue;
		}
		if (*p == '{' || *p == '[')
			depth++;
		else if ((*p == '}' || *p == ']') && --depth == 0)
			return p + 1;
		p++;
	}
	return end;
}

static const char *
skip_ws(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++;
	return p;
}

void
jw_open(struct jiter *it, const char *val, size_t len)
{
	it->end = val + len;
	it->p = skip_ws(val, it->end);
	it->object = it->p < it->end && *it->p == '{';
	if (it->p < it->end && (*it->p == '{' || *it->p == '['))
		it->p++;
	else
		it->p = it->end;	/* not a container: nothing to walk */
}

int
jw_next(struct jiter *it, const char **name, size_t *nlen, const char **val, size_t *vlen)
{
	const char *p = skip_ws(it->p, it->end), *v;

	if (p < it->end && *p == ',')
		p = skip_ws(p + 1, it->end);
	if (p >= it->end || *p == '}' || *p == ']') {
		it->p = it->end;
		return 0;
	}
	*name = NULL;
	*nlen = 0;
	if (it->object) {
		*name = p;
		p = string_end(p, it->end);
		*nlen = (size_t)(p - *name);
		p = skip_ws(p, it->end);
		p = skip_ws(p + 1, it->end);	/* the colon */
	}
	v = p;
	p = value_end(p, it->end);
	*val = v;
	*vlen = (size_t)(p - v);
	it->p = p;
	return 1;
}

/* The rewrite: text copied up to each replaced token, then its replacement. */
struct rewrite {
	const struct map *m;
	const char *done;	/* copied up to here */
	FILE *f;
};

/*
 * Is the JSON string tok (quotes included) the name s?  Compared in place
 * when it has no escape, which is nearly always: this runs for every
 * member of every line.
 */
static int
token_is(const char *tok, size_t len, const char *s)
{
	char *plain;
	int is;

	if (len >= 2 && memchr(tok + 1, '\\', len - 2) == NULL)
		return len - 2 == strlen(s) && memcmp(tok + 1, s, len - 2) == 0;
	plain = json_string_dup(tok, len);
	is = plain && strcmp(plain, s) == 0;
	free(plain);
	return is;
}

/* Replace the JSON string tok (quotes included) when a rename's source names it. */
static void
rename_token(struct rewrite *w, const char *tok, size_t len)
{
	int i;

	for (i = 0; i < w->m->nren; i++) {
		if (token_is(tok, len, w->m->ren[i].from)) {
			fwrite(w->done, 1, (size_t)(tok - w->done), w->f);
			json_put_string(w->f, w->m->ren[i].to, strlen(w->m->ren[i].to));
			w->done = tok + len;
			break;
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
			if (token_is(cname, cnlen, "name") && *cval == '"')
				rename_token(w, cval, cvlen);
	}
}

char *
rename_line(const char *line, size_t len, const struct map *m, size_t *outlen)
{
	static const char *const objects[] = { "after", "before", "key", "old_key" };
	struct rewrite w = { m, line, NULL };
	struct jiter it;
	const char *name, *val;
	size_t nlen, vlen, i;
	char *out = NULL;

	if ((w.f = open_memstream(&out, outlen)) == NULL)
		die("out of memory");
	jw_open(&it, line, len);
	while (it.object && jw_next(&it, &name, &nlen, &val, &vlen)) {
		for (i = 0; i < sizeof objects / sizeof *objects; i++)
			if (token_is(name, nlen, objects[i]))
				rename_members(&w, val, vlen);
		if (token_is(name, nlen, "unchanged") || token_is(name, nlen, "primary_key"))
			rename_elements(&w, val, vlen);
		else if (token_is(name, nlen, "columns"))
			rename_columns(&w, val, vlen);
	}
	fwrite(w.done, 1, (size_t)(line + len - w.done), w.f);
	if (fclose(w.f) != 0)
		die("out of memory");
	return out;
}
