/*
 * libFuzzer: pg-upsert's event parsing (event_scan, then event_check for a
 * target table), without a database.  The first byte picks the target
 * table's shape (one or two key columns, with or without an extra column);
 * the rest is the line.  An accepted event must be valid JSON whose parts
 * (row, pos, ts_ms, unchanged, old_key) lie inside the line and are what
 * their kind says; a schema event ("s") has been checked by the scan.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonscan.h"
#include "upsert.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fail(const char *what, const char *line, size_t len)
{
	fprintf(stderr, "fuzz-event: %s: %.*s\n", what, (int)(len > 400 ? 400 : len), line);
	abort();
}

/* The part off[0..plen) lies in the line, is valid JSON, and starts with one of first. */
static void
part(const char *line, size_t len, size_t off, size_t plen, const char *first, const char *what)
{
	if (off > len || plen > len - off || plen == 0)
		fail(what, line, len);
	if (json_scan(line + off, plen, NULL, NULL, NULL) != NULL || !strchr(first, line[off]))
		fail(what, line, len);
}

static void
check(const char *line, size_t len, const struct ev *ev)
{
	size_t i;

	if (json_scan(line, len, NULL, NULL, NULL) != NULL || !strchr("cudrkts", ev->op) || ev->op == 0)
		fail("accepted, but not a JSON event", line, len);
	if (ev->op == 's')
		return;
	part(line, len, ev->pos, ev->pos_len, "0123456789", "pos");
	for (i = 0; i < ev->pos_len; i++)
		if (line[ev->pos + i] < '0' || line[ev->pos + i] > '9')
			fail("pos is not an unsigned integer", line, len);
	if (ev->ts_len)
		part(line, len, ev->ts, ev->ts_len, "-0123456789", "ts_ms");
	if (ev->op == 't')
		return;
	part(line, len, ev->row, ev->row_len, "{", "row");
	if (ev->un_len)
		part(line, len, ev->un, ev->un_len, "[", "unchanged");
	if (ev->ok_len)
		part(line, len, ev->ok, ev->ok_len, "{", "old_key");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char *keys[] = { "id", "k\"2" };
	static char *cols[] = { "id", "k\"2", "v", "w" };
	static size_t klens[] = { 2, 3 }, clens[] = { 2, 3, 1, 1 };
	struct target t;
	struct scan sc;
	struct ev ev;
	char *line;

	if (size < 1)
		return 0;
	memset(&t, 0, sizeof t);
	t.keys = keys;
	t.klens = klens;
	t.nkeys = data[0] & 1 ? 2 : 1;
	t.cols = data[0] & 2 ? cols : NULL;
	t.clens = data[0] & 2 ? clens : NULL;
	t.ncols = data[0] & 2 ? 4 : 0;
	/* a copy of exactly the line's size: reading past it is caught */
	line = malloc(size - 1 ? size - 1 : 1);
	memcpy(line, data + 1, size - 1);
	if (event_scan(line, size - 1, &sc) == NULL && event_check(line, &sc, &t, &ev) == NULL)
		check(line, size - 1, &ev);
	free(line);
	return 0;
}
