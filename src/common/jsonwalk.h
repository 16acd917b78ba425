/*
 * A walk over the members of a JSON object or the elements of an array
 * whose text is already known to be valid JSON (scanned or from the
 * server): it only finds where names and values begin and end.
 */
#ifndef JSONWALK_H
#define JSONWALK_H

#include <stddef.h>

struct jiter {
	const char *p, *end;
	int object;		/* walking an object's members, not an array's elements */
};

/* Start on the object or array val; a walk over anything else is empty. */
void jw_open(struct jiter *it, const char *val, size_t len);
/* The next member (name: its quoted string) or element (name NULL); 0 at the end. */
int jw_next(struct jiter *it, const char **name, size_t *nlen, const char **val, size_t *vlen);

#endif
