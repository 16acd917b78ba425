/*
 * The walk over valid JSON text (jsonwalk.h).  Strings are skipped by their
 * quotes, not decoded; containers by their depth.
 */
#include <string.h>

#include "jsonwalk.h"

/* The first quote in [p, end), or NULL: most strings are short, looked at before memchr pays for its call. */
static const char *
next_quote(const char *p, const char *end)
{
	const char *stop = end - p > 16 ? p + 16 : end;

	for (; p < stop; p++)
		if (*p == '"')
			return p;
	return p < end ? memchr(p, '"', (size_t)(end - p)) : NULL;
}

/* The end of the string starting at p (its opening quote): the first quote not escaped. */
static const char *
string_end(const char *p, const char *end)
{
	const char *q, *b;

	for (p++; p < end; p = q + 1) {
		if ((q = next_quote(p, end)) == NULL)
			return end;
		for (b = q; b > p && b[-1] == '\\'; b--)
			;
		if ((q - b) % 2 == 0)
			return q + 1;
	}
	return end;
}

/* The end of the JSON value starting at p. */
static const char *
value_end(const char *p, const char *end)
{
	int depth = 0;

	if (*p == '"')
		return string_end(p, end);
	if (*p != '{' && *p != '[') {
		while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\t' &&
		    *p != '\r' && *p != '\n')
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
