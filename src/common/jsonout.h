/* Writing JSON text to a stdio stream. */
#ifndef PGCDC_JSONOUT_H
#define PGCDC_JSONOUT_H

#include <stddef.h>
#include <stdio.h>

/* Write s (len bytes) as a quoted JSON string, escaping as RFC 8259 requires. */
void json_put_string(FILE *f, const char *s, size_t len);

/*
 * Write the JSON text s without the whitespace outside its strings.  A valid
 * JSON text can hold a raw newline only as whitespace, so the result always
 * fits on one line.
 */
void json_put_compact(FILE *f, const char *s, size_t len);

/* json_put_compact only when s holds a newline; otherwise copy it as it is. */
void json_put_oneline(FILE *f, const char *s, size_t len);

#endif
