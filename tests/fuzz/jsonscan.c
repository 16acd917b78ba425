/*
 * libFuzzer: the JSON scanner against jansson.  A text one accepts the other
 * must accept, the "key" member the scanner finds must be the one jansson
 * finds, and its key text (json_key_text, what kafka-pub keys messages by)
 * must be jansson's string or the value's JSON text without whitespace.
 *
 * The differences allowed, each a rule of ours or of jansson's beyond the
 * grammar of RFC 8259:
 * - nesting: the scanner refuses more than 512 levels (values, scalars
 *   included), jansson more than 2048 (arrays and objects);
 * - numbers: jansson refuses an integer beyond 64 bits or a real beyond a
 *   double's range; the scanner checks the grammar only, like PostgreSQL's json;
 * - \u escapes: jansson refuses half a surrogate pair, and U+0000 in a member
 *   name even with JSON_ALLOW_NUL; the scanner accepts both (the grammar
 *   does, so does PostgreSQL's json).  json_key_text refuses a key holding
 *   either, as it did when jansson decoded keys.
 * - a raw NUL byte: jansson's reader skips one outside a string (json_loadb
 *   accepts "[1\0]"); it is never valid JSON, and the scanner must refuse it.
 * Duplicate member names: both accept them and take the last.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsonscan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fail(const char *what, const uint8_t *data, size_t size)
{
	fprintf(stderr, "fuzz-jsonscan: %s: %.*s\n", what, (int)(size > 400 ? 400 : size), (const char *)data);
	abort();
}

/* Does jansson refuse for a reason the scanner does not share (see above)? */
static int
jansson_only(const json_error_t *err)
{
	enum json_error_code code = json_error_code(err);

	return code == json_error_numeric_overflow || code == json_error_null_byte_in_key ||
	    strstr(err->text, "invalid Unicode") != NULL;
}

/* True when text[0..len) has whitespace outside its strings. */
static int
loose(const char *text, size_t len)
{
	int in_string = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		if (in_string && text[i] == '\\')
			i++;
		else if (text[i] == '"')
			in_string = !in_string;
		else if (!in_string && strchr(" \t\r\n", text[i]) && text[i] != '\0')
			return 1;
	}
	return 0;
}

/* The key text of val must be what jansson makes of the member jv. */
static void
check_key_text(const char *val, size_t vlen, json_t *jv, const uint8_t *data, size_t size)
{
	char *buf = malloc(vlen + 1);
	long n = json_key_text(val, vlen, buf, vlen + 1);
	json_t *back;

	if (json_is_string(jv)) {
		size_t jl = json_string_length(jv);

		if (memchr(json_string_value(jv), '\0', jl) ? n != -1 :
		    (n < 0 || (size_t)n != jl || memcmp(buf, json_string_value(jv), jl) != 0))
			fail("key text is not the decoded string", data, size);
	} else {
		if (n < 0 || loose(buf, (size_t)n))
			fail("key text is not compact JSON", data, size);
		back = json_loadb(buf, (size_t)n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
		if (back == NULL || !json_equal(back, jv))
			fail("key text is not the key's value", data, size);
		json_decref(back);
	}
	free(buf);
}

/* Both accepted: the "key" member found must be the same. */
static void
check_key(json_t *root, const char *val, size_t vlen, const uint8_t *data, size_t size)
{
	json_t *jv = json_is_object(root) ? json_object_get(root, "key") : NULL, *sv;

	if ((jv == NULL) != (val == NULL))
		fail(jv ? "the scanner misses the key" : "the scanner finds a key jansson does not", data, size);
	if (jv == NULL)
		return;
	sv = json_loadb(val, vlen, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	if (sv == NULL || !json_equal(sv, jv))
		fail("the scanner's key is not jansson's", data, size);
	json_decref(sv);
	check_key_text(val, vlen, jv, data, size);
}

/* json_scan_line says what a newline check and json_scan say (why) in one pass. */
static void
line_agrees(const char *text, size_t size, const char *why)
{
	const char *line = json_scan_line(text, size);
	const char *want = memchr(text, '\n', size) ? "value holds a newline" : why;

	if (want == NULL ? line != NULL : (line == NULL || strcmp(line, want) != 0))
		fail(line ? line : "json_scan_line accepted", (const uint8_t *)text, size);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data, *val, *why;
	size_t vlen;
	json_error_t err;
	json_t *root;

	why = json_scan(text, size, "key", &val, &vlen);
	line_agrees(text, size, why);
	if (memchr(text, '\0', size) != NULL) {
		if (why == NULL)
			fail("a NUL byte accepted", data, size);
		return 0;
	}
	root = json_loadb(text, size, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
	if (why == NULL && root == NULL && !jansson_only(&err))
		fail(err.text, data, size);
	if (why != NULL && root != NULL && strcmp(why, "not JSON: nested too deep") != 0)
		fail(why, data, size);
	if (why == NULL && root != NULL)
		check_key(root, val, vlen, data, size);
	json_decref(root);
	return 0;
}
