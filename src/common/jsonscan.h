/*
 * An allocation-free JSON validator: one pass over a line says whether it is
 * exactly one JSON text (RFC 8259, UTF-8) and where a top-level member's
 * value lies.  A parser such as jansson builds a tree per call; this runs on
 * every line of kafka-pub and kafka-sub, where the tree is not needed, about
 * 15 times as fast (tests/bench/json.sh).
 */
#ifndef PGCDC_JSONSCAN_H
#define PGCDC_JSONSCAN_H

#include <stddef.h>

/*
 * Validate s[0..len).  When field is not NULL and the text is an object with
 * that member (the last one, if repeated), *val and *vlen locate its value.
 * Returns NULL when valid, else a short reason ("not JSON: ...").
 */
const char *json_scan(const char *s, size_t len, const char *field,
    const char **val, size_t *vlen);

/* The same for n members at once: vals[i] is NULL for a member not there. */
const char *json_scan_fields(const char *s, size_t len, const char *const *fields, int n,
    const char **vals, size_t *vlens);

/* The same, also counting the members of the top-level object. */
const char *json_scan_members(const char *s, size_t len, const char *const *fields, int n,
    const char **vals, size_t *vlens, int *members);

/*
 * Validate s[0..len) as one line of NDJSON: NULL when it is valid JSON
 * without a raw newline, "value holds a newline" when it has one (valid or
 * not), else json_scan's reason.  One pass over a valid text.
 */
const char *json_scan_line(const char *s, size_t len);

/* True when s[0..len) is valid UTF-8. */
int utf8_valid(const char *s, size_t len);

/*
 * Render a JSON value as a message key into buf (at most cap bytes): a string
 * as its bare decoded text, anything else as compact JSON text.  Returns the
 * length, or -1 when it does not fit.
 */
long json_key_text(const char *val, size_t vlen, char *buf, size_t cap);

#endif
