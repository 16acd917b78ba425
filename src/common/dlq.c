#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dlq.h"
#include "jsonout.h"
#include "jsonscan.h"
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
};

struct dlq *
dlq_open(const char *path)
{
	struct dlq *d = calloc(1, sizeof *d);

	if (d == NULL)
		die("out of memory");
	d->path = path ? path : "stderr";
	d->named = path != NULL;
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

	if (!sig_reopen)
		return;
	sig_reopen = 0;
	if (d == NULL || !d->named)
		return;
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
