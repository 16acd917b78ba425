#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dlq.h"
#include "jsonout.h"
#include "jsonscan.h"
#include "jsonwalk.h"
#include "log.h"
#include "privfile.h"
#include "sig.h"

struct dlq {
	int fd;
	const char *path;
	unsigned long long count;
	size_t limit;		/* most bytes of a line a record keeps; 0: all */
	int failed;
	int named;		/* a file, not stderr */
	sig_atomic_t reopened;	/* the sig_reopen it was last opened at */
};

struct dlq *
dlq_open(const char *path)
{
	struct dlq *d = calloc(1, sizeof *d);

	if (d == NULL)
		die("out of memory");
	d->path = path ? path : "stderr";
	d->named = path != NULL;
	d->reopened = sig_reopen;
	/* dead letters hold the rejected data itself: private, and never through a link */
	d->fd = path ? open_private_append(path, "dead-letter file") : STDERR_FILENO;
	if (d->fd < 0) {
		free(d);
		return NULL;
	}
	return d;
}

static void
put_base64(FILE *f, const unsigned char *s, size_t len)
{
	static const char b64[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	putc('"', f);
	for (i = 0; i + 2 < len; i += 3) {
		putc(b64[s[i] >> 2], f);
		putc(b64[(s[i] & 3) << 4 | s[i + 1] >> 4], f);
		putc(b64[(s[i + 1] & 15) << 2 | s[i + 2] >> 6], f);
		putc(b64[s[i + 2] & 63], f);
	}
	if (len - i == 1) {
		putc(b64[s[i] >> 2], f);
		putc(b64[(s[i] & 3) << 4], f);
		fputs("==", f);
	} else if (len - i == 2) {
		putc(b64[s[i] >> 2], f);
		putc(b64[(s[i] & 3) << 4 | s[i + 1] >> 4], f);
		putc(b64[(s[i + 1] & 15) << 2], f);
		putc('=', f);
	}
	putc('"', f);
}

/* The value of a base64 digit, or -1. */
static int
b64_digit(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode base64 s[0..len) (padded, no line breaks) into out: its length, or -1. */
static long
from_base64(const char *s, size_t len, char *out)
{
	unsigned bits = 0;
	long n = 0;
	int nbits = 0, d;
	size_t i;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] == '=') {
			/* padding only at the end: one or two, after which nothing */
			if (i + 2 < len || (i + 2 == len && s[i + 1] != '='))
				return -1;
			break;
		}
		if ((d = b64_digit(s[i])) < 0)
			return -1;
		bits = bits << 6 | (unsigned)d;
		if ((nbits += 6) >= 8) {
			nbits -= 8;
			out[n++] = (char)(bits >> nbits & 0xff);
		}
	}
	return n;
}

long
dlq_original(const char *rec, size_t len, char **buf, size_t *cap, const char **why)
{
	static const char *const fields[] = { "line", "line_base64", "truncated", "error" };
	const char *v[4];
	size_t vl[4];
	long n;

	if ((*why = json_scan_fields(rec, len, fields, 4, v, vl)) != NULL)
		return -1;
	*why = "not a dead-letter record: no \"error\" and \"line\" or \"line_base64\" string";
	if (v[3] == NULL || v[3][0] != '"' || (v[0] == NULL) == (v[1] == NULL))
		return -1;
	if ((v[0] && v[0][0] != '"') || (v[1] && v[1][0] != '"'))
		return -1;
	if (v[2] && vl[2] == 4 && memcmp(v[2], "true", 4) == 0) {
		*why = "the record keeps only the start of its line (truncated)";
		return -1;
	}
	/* a JSON string decodes to no more bytes than it has */
	if (*cap < len + 1) {
		if ((*buf = realloc(*buf, len + 1)) == NULL)
			die("out of memory");
		*cap = len + 1;
	}
	n = v[0] ? json_key_text(v[0], vl[0], *buf, *cap) : from_base64(v[1] + 1, vl[1] - 2, *buf);
	*why = "not a dead-letter record: its line_base64 is not base64";
	return n;
}

void
dlq_set_limit(struct dlq *d, size_t max)
{
	d->limit = max;
}

/* How much of a line a record keeps: up to the limit, not cutting a UTF-8 character in two. */
static size_t
kept_length(const char *line, size_t len, size_t limit)
{
	size_t keep = limit;

	if (limit == 0 || len <= limit)
		return len;
	/* the first byte left out continues a character: leave out its start too */
	while (keep > 0 && limit - keep < 3 && ((unsigned char)line[keep] & 0xc0) == 0x80)
		keep--;
	return keep;
}

/*
 * Each record is built whole and appended with one write(), so records from
 * several processes appending to one file (O_APPEND) never interleave.
 */
int
dlq_write(struct dlq *d, const char *line, size_t len, const char *error, const char *context)
{
	char *buf = NULL;
	size_t size = 0, off = 0;
	ssize_t n;
	size_t keep = kept_length(line, len, d->limit);
	FILE *f = open_memstream(&buf, &size);

	if (f == NULL)
		die("out of memory");
	fputs("{\"error\":", f);
	json_put_string(f, error, strlen(error));
	if (context)
		fputs(context, f);
	if (keep < len)
		fputs(",\"truncated\":true", f);
	len = keep;
	if (utf8_valid(line, len)) {
		fputs(",\"line\":", f);
		json_put_string(f, line, len);
	} else {
		fputs(",\"line_base64\":", f);
		put_base64(f, (const unsigned char *)line, len);
	}
	fputs("}\n", f);
	if (fclose(f) != 0)
		die("out of memory");
	while (off < size) {
		n = write(d->fd, buf + off, size - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			d->failed = errno ? errno : EIO;
			break;
		}
		off += (size_t)n;
	}
	free(buf);
	d->count++;
	return d->failed ? -1 : 0;
}

/*
 * Where a line came from: its members table (a string), key (an object of
 * at most ORIGIN_KEY_MAX bytes) and pos (a number) as the line holds them,
 * and the topic (a string), partition and offset (numbers) of its member
 * kafka (kafka-sub --origin), as JSON members (",\"table\":..."); NULL when
 * it is no JSON object or holds none.  free() it.
 */
#define ORIGIN_KEY_MAX 1024

static int
is_number(const char *v)
{
	return v[0] == '-' || (v[0] >= '0' && v[0] <= '9');
}

/* The members of kafka-sub's "kafka" object kafka[0..len) that are what they should be. */
static void
put_kafka_origin(FILE *f, const char *kafka, size_t len)
{
	static const char *const names[] = { "\"topic\"", "\"partition\"", "\"offset\"" };
	const char *name, *v;
	size_t nlen, vlen;
	struct jiter it;
	int i;

	for (i = 0; i < 3; i++) {
		/* the last of a repeated member, as json_scan_fields takes them */
		const char *val = NULL;
		size_t vl = 0;

		jw_open(&it, kafka, len);
		while (jw_next(&it, &name, &nlen, &v, &vlen))
			if (nlen == strlen(names[i]) && memcmp(name, names[i], nlen) == 0) {
				val = v;
				vl = vlen;
			}
		if (val != NULL && (i == 0 ? val[0] == '"' : is_number(val)))
			fprintf(f, ",%s:%.*s", names[i], (int)vl, val);
	}
}

static char *
dlq_origin(const char *line, size_t len)
{
	static const char *const names[] = { "table", "key", "pos", "kafka" };
	const char *v[4];
	size_t vl[4], size = 0;
	char *buf = NULL;
	FILE *f;
	int i;

	if (json_scan_fields(line, len, names, 4, v, vl) != NULL)
		return NULL;
	if ((f = open_memstream(&buf, &size)) == NULL)
		die("out of memory");
	for (i = 0; i < 3; i++) {
		if (v[i] == NULL || (i == 0 && v[i][0] != '"') ||
		    (i == 1 && (v[i][0] != '{' || vl[i] > ORIGIN_KEY_MAX)) || (i == 2 && !is_number(v[i])))
			continue;
		fprintf(f, ",\"%s\":%.*s", names[i], (int)vl[i], v[i]);
	}
	if (v[3] != NULL && v[3][0] == '{')
		put_kafka_origin(f, v[3], vl[3]);
	if (fclose(f) != 0)
		die("out of memory");
	if (size == 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int
dlq_write_input(struct dlq *d, const char *line, size_t len, const char *error,
    unsigned long long n, int cut)
{
	char *origin = cut ? NULL : dlq_origin(line, len), *ctx;
	int status;

	if (asprintf(&ctx, ",\"input_line\":%llu%s%s", n, origin ? origin : "",
	    cut ? ",\"truncated\":true" : "") < 0)
		die("out of memory");
	status = dlq_write(d, line, len, error, ctx);
	free(ctx);
	free(origin);
	return status;
}

int
dlq_flush(struct dlq *d)
{
	if (d->failed) {
		errno = d->failed;
		log_error("cannot write dead letters to %s:", d->path);
		return -1;
	}
	return 0;
}

void
dlq_reopen_if_asked(struct dlq *d)
{
	int fd;

	if (d == NULL || !d->named || d->reopened == sig_reopen)
		return;
	d->reopened = sig_reopen;
	if ((fd = open_private_append(d->path, "dead-letter file")) < 0) {
		log_warning("dead letters still go to the file \"%s\" was", d->path);
		return;
	}
	if (close(d->fd) != 0 && !d->failed)
		d->failed = errno;
	d->fd = fd;
	log_debug("dead-letter file \"%s\" opened again", d->path);
}

int
dlq_close(struct dlq *d)
{
	int r;

	if (d == NULL)
		return 0;
	r = dlq_flush(d);
	if (d->fd != STDERR_FILENO && close(d->fd) != 0 && r == 0) {
		log_error("cannot write dead letters to %s:", d->path);
		r = -1;
	}
	free(d);
	return r;
}

unsigned long long
dlq_count(const struct dlq *d)
{
	return d->count;
}
