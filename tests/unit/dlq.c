/*
 * Unit tests of the dead-letter records: a UTF-8 line kept as "line", other
 * bytes as "line_base64" that base64 -d turns back into them byte for byte
 * (each padding case), and the limit that cuts a record's line, at a
 * character boundary, marking it "truncated":true.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dlq.h"
#include "log.h"
#include "check.h"

static char dir[64], path[128];

/* The whole of a file, NUL-terminated; *len its size. */
static char *
slurp(const char *name, size_t *len)
{
	FILE *f = fopen(name, "r");
	char *s = NULL;
	size_t cap = 0, n = 0, r;

	if (f == NULL)
		exit(2);
	do {
		if (n + 65536 + 1 > cap && (s = realloc(s, cap = (n + 65536 + 1) * 2)) == NULL)
			exit(2);
		r = fread(s + n, 1, 65536, f);
		n += r;
	} while (r > 0);
	fclose(f);
	s[n] = '\0';
	*len = n;
	return s;
}

/* The one record dlq_write makes of line with limit (0: none), as the file holds it. */
static char *
record(const char *line, size_t len, size_t limit, size_t *rlen)
{
	struct dlq *d;

	unlink(path);
	if ((d = dlq_open(path)) == NULL)
		exit(2);
	if (limit)
		dlq_set_limit(d, limit);
	CHECK(dlq_write(d, line, len, "bad", ",\"input_line\":1") == 0, "dlq_write");
	CHECK(dlq_count(d) == 1, "one record counted");
	CHECK(dlq_close(d) == 0, "dlq_close");
	return slurp(path, rlen);
}

/* The value of "line_base64" in rec, through base64 -d: *len bytes, or NULL. */
static char *
decode(const char *rec, size_t *len)
{
	const char *start = strstr(rec, "\"line_base64\":\""), *end;
	char b64[160], out[160], cmd[400];
	FILE *f;
	char *bytes;

	if (start == NULL || (end = strchr(start += 15, '"')) == NULL)
		return NULL;
	snprintf(b64, sizeof b64, "%s/b64", dir);
	snprintf(out, sizeof out, "%s/bytes", dir);
	if ((f = fopen(b64, "w")) == NULL || fwrite(start, 1, end - start, f) != (size_t)(end - start) ||
	    fclose(f) != 0)
		exit(2);
	snprintf(cmd, sizeof cmd, "base64 -d '%s' >'%s'", b64, out);
	if (system(cmd) != 0)
		return NULL;
	bytes = slurp(out, len);
	return bytes;
}

/* Bytes that are not UTF-8 come back from base64 -d unchanged, each padding case. */
static void
test_base64(void)
{
	static const struct { const char *bytes; const char *b64; } cases[] = {
		{ "\xff", "/w==" }, { "\xff\xfe", "//4=" }, { "\xff\xfe\xfd", "//79" },
		{ "caf\xe9", "Y2Fm6Q==" }, { "a\xc3", "YcM=" }, { "\x80\0\x01\x02\x03\x04", "gAABAgME" },
	};
	char want[256];
	unsigned char all[256 * 3];
	size_t i, len, dlen;
	char *rec, *got;

	for (i = 0; i < sizeof cases / sizeof *cases; i++) {
		size_t n = i == 5 ? 6 : strlen(cases[i].bytes);

		rec = record(cases[i].bytes, n, 0, &len);
		snprintf(want, sizeof want, "{\"error\":\"bad\",\"input_line\":1,\"line_base64\":\"%s\"}\n",
		    cases[i].b64);
		CHECK(strcmp(rec, want) == 0, "case %zu: got %s, want %s", i, rec, want);
		got = decode(rec, &dlen);
		CHECK(got && dlen == n && memcmp(got, cases[i].bytes, n) == 0, "case %zu decodes back", i);
		free(got);
		free(rec);
	}
	/* every byte value, at each length modulo 3 */
	for (i = 0; i < sizeof all; i++)
		all[i] = (unsigned char)(255 - i % 256);
	for (len = sizeof all - 2; len <= sizeof all; len++) {
		rec = record((const char *)all, len, 0, &dlen);
		got = decode(rec, &dlen);
		CHECK(got && dlen == len && memcmp(got, all, len) == 0, "%zu bytes of every value decode back", len);
		CHECK(strstr(rec, "\"truncated\"") == NULL, "no truncated mark without a limit");
		free(got);
		free(rec);
	}
}

static void
test_utf8(void)
{
	size_t len;
	char *rec = record("caf\xc3\xa9 \"q\"", 9, 0, &len);

	CHECK(strcmp(rec, "{\"error\":\"bad\",\"input_line\":1,\"line\":\"caf\xc3\xa9 \\\"q\\\"\"}\n") == 0,
	    "a UTF-8 line is kept as line: %s", rec);
	free(rec);
}

/* The limit: a line of it is whole; a longer one keeps its start, whole characters. */
static void
test_limit(void)
{
	size_t len, dlen, big = (16 << 20) + 10, i;
	char *rec, *got, *line;

	rec = record("abcde", 5, 5, &len);
	CHECK(strcmp(rec, "{\"error\":\"bad\",\"input_line\":1,\"line\":\"abcde\"}\n") == 0, "at the limit: %s", rec);
	free(rec);
	rec = record("abcdef", 6, 5, &len);
	CHECK(strcmp(rec, "{\"error\":\"bad\",\"input_line\":1,\"truncated\":true,\"line\":\"abcde\"}\n") == 0,
	    "over the limit: %s", rec);
	free(rec);
	/* é is two bytes, € three: a cut inside either leaves the character out */
	rec = record("abcd\xc3\xa9", 6, 5, &len);
	CHECK(strstr(rec, ",\"truncated\":true,\"line\":\"abcd\"}") != NULL, "é not cut in two: %s", rec);
	free(rec);
	rec = record("abc\xe2\x82\xac", 6, 5, &len);
	CHECK(strstr(rec, ",\"truncated\":true,\"line\":\"abc\"}") != NULL, "€ not cut in two: %s", rec);
	free(rec);
	/* 16 MiB of lead bytes without their continuations (not UTF-8, and no
	 * character to keep whole): the first 16 MiB, in base64, decode back */
	if ((line = malloc(big)) == NULL)
		exit(2);
	for (i = 0; i < big; i++)
		line[i] = (char)(0xc0 + i % 64);
	rec = record(line, big, 16 << 20, &len);
	CHECK(strncmp(rec, "{\"error\":\"bad\",\"input_line\":1,\"truncated\":true,\"line_base64\":\"", 62) == 0,
	    "a cut record says truncated: %.80s", rec);
	CHECK(len == 62 + (16 << 20) / 3 * 4 + 4 + 3, "16 MiB in base64: %zu bytes of record", len);
	got = decode(rec, &dlen);
	CHECK(got && dlen == 16 << 20 && memcmp(got, line, dlen) == 0, "the cut record decodes to the first 16 MiB");
	free(got);
	free(rec);
	free(line);
}

/* The line of a record, as dlq_original reads it back: its length, or -1 with *why. */
static long
original(const char *rec, char **buf, const char **why)
{
	size_t cap = 0;

	*buf = NULL;
	return dlq_original(rec, strlen(rec), buf, &cap, why);
}

/* Records read back: each line whole, byte for byte; no line from what is not a whole record. */
static void
test_original(void)
{
	static const char *const refused[] = {
		"not json", "[1]", "{\"error\":\"e\"}", "{\"line\":\"x\"}",
		"{\"error\":\"e\",\"line\":\"x\",\"line_base64\":\"eA==\"}", "{\"error\":\"e\",\"line\":7}",
		"{\"error\":\"e\",\"line_base64\":\"eA=\"}", "{\"error\":\"e\",\"line_base64\":\"e=A=\"}",
		"{\"error\":\"e\",\"truncated\":true,\"line\":\"abc\"}",
	};
	unsigned char all[256 * 3];
	const char *why;
	size_t i, len, rlen;
	char *rec, *got;
	long n;

	for (i = 0; i < sizeof all; i++)
		all[i] = (unsigned char)(255 - i % 256);
	for (len = sizeof all - 2; len <= sizeof all; len++) {
		rec = record((const char *)all, len, 0, &rlen);
		rec[rlen - 1] = '\0';	/* the newline */
		n = original(rec, &got, &why);
		CHECK(n == (long)len && memcmp(got, all, len) == 0, "%zu bytes of every value read back", len);
		free(got);
		free(rec);
	}
	rec = record("caf\xc3\xa9 \"q\" \\ \t", 13, 0, &rlen);
	n = original(rec, &got, &why);
	CHECK(n == 13 && memcmp(got, "caf\xc3\xa9 \"q\" \\ \t", 13) == 0, "a UTF-8 line read back: %.*s", (int)n, got);
	free(got);
	free(rec);
	for (i = 0; i < sizeof refused / sizeof *refused; i++) {
		n = original(refused[i], &got, &why);
		CHECK(n == -1 && why != NULL, "no line from %s", refused[i]);
		free(got);
	}
	original(refused[8], &got, &why);
	CHECK(strcmp(why, "the record keeps only the start of its line (truncated)") == 0, "truncated: %s", why);
	free(got);
}

int
main(void)
{
	char cmd[128];

	log_init("dlq");
	strcpy(dir, "/tmp/dlq.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 2;
	snprintf(path, sizeof path, "%s/dlq", dir);
	test_base64();
	test_utf8();
	test_limit();
	test_original();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 2;
	printf("dlq: %d passed, %d failed\n", passed, failed);
	return failed > 0;
}
