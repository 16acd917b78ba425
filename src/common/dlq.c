#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dlq.h"
#include "jsonout.h"
#include "jsonscan.h"
#include "log.h"

struct dlq {
	FILE *f;
	const char *path;
	unsigned long long count;
};

struct dlq *
dlq_open(const char *path)
{
	struct dlq *d = calloc(1, sizeof *d);

	if (d == NULL)
		die("out of memory");
	d->path = path ? path : "stderr";
	d->f = path ? fopen(path, "a") : stderr;
	if (d->f == NULL) {
		log_error("cannot open dead-letter file \"%s\":", path);
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

int
dlq_write(struct dlq *d, const char *line, size_t len, const char *error, const char *context)
{
	flockfile(d->f);
	fputs("{\"error\":", d->f);
	json_put_string(d->f, error, strlen(error));
	if (context)
		fputs(context, d->f);
	if (utf8_valid(line, len)) {
		fputs(",\"line\":", d->f);
		json_put_string(d->f, line, len);
	} else {
		fputs(",\"line_base64\":", d->f);
		put_base64(d->f, (const unsigned char *)line, len);
	}
	fputs("}\n", d->f);
	funlockfile(d->f);
	d->count++;
	return ferror(d->f) ? -1 : 0;
}

int
dlq_flush(struct dlq *d)
{
	if (fflush(d->f) != 0 || ferror(d->f)) {
		log_error("cannot write dead letters to %s:", d->path);
		return -1;
	}
	return 0;
}

int
dlq_close(struct dlq *d)
{
	int r;

	if (d == NULL)
		return 0;
	r = dlq_flush(d);
	if (d->f != stderr && fclose(d->f) != 0 && r == 0) {
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
