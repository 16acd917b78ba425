/*
 * The JSON scanner against jansson on the work kafka-pub does per line:
 * validate a CDC event and find its "key" member.  Both run on the same
 * generated update events, in memory, so only the parsing is timed.
 * Usage: jsonbench [lines [runs]]; prints one table row per parser and the
 * speed ratio.  Built by `make bench-json`, not part of the tools.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "jsonscan.h"

struct corpus {
	char *buf;
	size_t *off, *len;
	long n;
	size_t bytes;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
uuid(char *out, unsigned long long seed)
{
	unsigned long long a = seed * 0x9e3779b97f4a7c15ULL, b = a ^ (a >> 29) * 0xbf58476d1ce4e5b9ULL;

	snprintf(out, 37, "%08llx-%04llx-4%03llx-a%03llx-%012llx", a >> 32, a >> 16 & 0xffff,
	    a & 0xfff, b >> 52, b & 0xffffffffffffULL);
}

/* One update event as pg-cdc-tail writes it in trigger mode, about 450 bytes. */
static int
event(char *out, size_t cap, long i)
{
	static const char *const status[] = { "new", "paid", "shipped", "delivered", "cancelled" };
	const char *from = status[i % 4], *to = status[i % 4 + 1];
	char id[37];
	long long pos = 1000000 + i, ms = 1764150000123LL + i * 7;
	int cents = (int)(i * 7919 % 100000);

	uuid(id, (unsigned long long)i);
	return snprintf(out, cap, "{\"op\":\"u\",\"table\":\"public.orders\",\"key\":{\"id\":\"%s\"},"
	    "\"before\":{\"id\":\"%s\",\"status\":\"%s\",\"total\":\"%d.%02d\","
	    "\"currency\":\"EUR\",\"version\":%ld,\"updated_at\":\"2025-11-26T10:%02ld:%02ld.%06ld+00:00\"},"
	    "\"after\":{\"id\":\"%s\",\"status\":\"%s\",\"total\":\"%d.%02d\","
	    "\"currency\":\"EUR\",\"version\":%ld,\"updated_at\":\"2025-11-26T10:%02ld:%02ld.%06ld+00:00\"},"
	    "\"pos\":%lld,\"txid\":%lld,\"ts_ms\":%lld}",
	    id, id, from, cents / 100, cents % 100, i % 9 + 1, i / 60 % 60, i % 60, i * 37 % 1000000,
	    id, to, cents / 100, cents % 100, i % 9 + 2, i / 60 % 60, i % 60, i * 41 % 1000000,
	    pos, pos / 3, ms);
}

static void
generate(struct corpus *c, long n)
{
	size_t cap = (size_t)n * 600;
	long i;

	c->buf = malloc(cap);
	c->off = malloc(n * sizeof *c->off);
	c->len = malloc(n * sizeof *c->len);
	if (!c->buf || !c->off || !c->len) {
		fprintf(stderr, "jsonbench: out of memory\n");
		exit(1);
	}
	c->n = n;
	c->bytes = 0;
	for (i = 0; i < n; i++) {
		c->off[i] = c->bytes;
		c->len[i] = (size_t)event(c->buf + c->bytes, cap - c->bytes, i);
		c->bytes += c->len[i];
	}
}

/* The scanner: validate, find "key", and render its text as kafka-pub does when text. */
static long
scanner(const struct corpus *c, int text)
{
	char key[256];
	long i, sum = 0;

	for (i = 0; i < c->n; i++) {
		const char *val;
		size_t vlen;

		if (json_scan(c->buf + c->off[i], c->len[i], "key", &val, &vlen) != NULL || val == NULL)
			return -1;
		sum += text ? json_key_text(val, vlen, key, sizeof key) : (long)vlen;
	}
	return sum;
}

/* jansson: parse into a tree, look up "key", and render it compact when dump. */
static long
jansson(const struct corpus *c, int dump)
{
	long i, sum = 0;

	for (i = 0; i < c->n; i++) {
		json_t *root = json_loadb(c->buf + c->off[i], c->len[i], 0, NULL), *k;
		char *text;

		if (root == NULL || (k = json_object_get(root, "key")) == NULL)
			return -1;
		if (dump) {
			if ((text = json_dumps(k, JSON_COMPACT)) == NULL)
				return -1;
			sum += (long)strlen(text);
			free(text);
		} else {
			sum += (long)json_object_size(k);
		}
		json_decref(root);
	}
	return sum;
}

static long
run_scan(const struct corpus *c)
{
	return scanner(c, 0);
}

static long
run_scan_key(const struct corpus *c)
{
	return scanner(c, 1);
}

static long
run_jansson(const struct corpus *c)
{
	return jansson(c, 0);
}

static long
run_jansson_dump(const struct corpus *c)
{
	return jansson(c, 1);
}

/* The fastest of runs passes: on a shared machine it is the least disturbed. */
static double
best(long (*fn)(const struct corpus *), const struct corpus *c, int runs, long *check)
{
	double t, min = -1;
	int r;

	for (r = 0; r < runs; r++) {
		t = now();
		*check = fn(c);
		t = now() - t;
		if (min < 0 || t < min)
			min = t;
	}
	return min;
}

static void
row(const char *label, const struct corpus *c, double secs)
{
	printf("%-40s %10ld %8.3f %12.0f %9.1f\n", label, c->n, secs, c->n / secs,
	    c->bytes / secs / 1e6);
}

int
main(int argc, char **argv)
{
	struct corpus c;
	long n = argc > 1 ? atol(argv[1]) : 100000, ks, kk, kj, kd;
	int runs = argc > 2 ? atoi(argv[2]) : 5;
	double ts, tk, tj, td;

	if (n <= 0 || runs <= 0) {
		fprintf(stderr, "usage: jsonbench [lines [runs]]\n");
		return 2;
	}
	generate(&c, n);
	tj = best(run_jansson, &c, runs, &kj);
	td = best(run_jansson_dump, &c, runs, &kd);
	ts = best(run_scan, &c, runs, &ks);
	tk = best(run_scan_key, &c, runs, &kk);
	/* each finds the same key: the sums of its sizes agree */
	if (kj != n || ks < 0 || ks != kk || kd != kk) {
		fprintf(stderr, "jsonbench: the parsers disagree on the generated events\n");
		return 1;
	}
	printf("%-40s %10s %8s %12s %9s\n", "JSON: validate, find \"key\"", "lines", "seconds",
	    "lines/s", "MB/s");
	printf("(%ld events of %zu bytes on average, best of %d runs)\n", n, c.bytes / n, runs);
	row("jansson json_loadb + get (reference)", &c, tj);
	row("json_scan", &c, ts);
	row("jansson json_loadb + get + json_dumps", &c, td);
	row("json_scan + json_key_text (kafka-pub)", &c, tk);
	printf("speed ratio json_scan / jansson:                         %.1f\n", tj / ts);
	printf("speed ratio json_scan + json_key_text / jansson + dumps: %.1f\n", td / tk);
	free(c.buf);
	free(c.off);
	free(c.len);
	return 0;
}
