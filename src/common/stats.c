/*
 * Reports of figures (stats.h).  The JSON line is for people and scripts
 * (jq), the metrics file for Prometheus: node_exporter reads every *.prom
 * file of its textfile directory at each scrape, so the file is replaced
 * whole by rename(2), never seen half written.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "jsonout.h"
#include "log.h"
#include "sig.h"
#include "stats.h"

int
stats_due(struct stats_clock *c)
{
	double now = mono_ms();

	if (sig_report) {
		sig_report = 0;
		return 2;
	}
	if (c->interval_ms <= 0)
		return 0;
	if (c->next == 0)
		c->next = now + c->interval_ms;
	if (now < c->next)
		return 0;
	c->next = now + c->interval_ms;
	return 1;
}

long
stats_wait(const struct stats_clock *c)
{
	double left;

	if (c->interval_ms <= 0)
		return -1;
	if (c->next == 0)
		return c->interval_ms;
	left = c->next - mono_ms();
	return left > 0 ? (long)left + 1 : 0;
}

/* A value as JSON and Prometheus both read it: an integer without a point. */
static void
put_value(FILE *f, double v, const char *unknown)
{
	if (isnan(v))
		fputs(unknown, f);
	else if (v == floor(v) && fabs(v) < 1e15)
		fprintf(f, "%.0f", v);
	else
		fprintf(f, "%.6g", v);
}

int
stats_line(FILE *f, const char *stage, const struct metric *m, int n)
{
	struct timespec ts;
	struct tm tm;
	char when[40];
	int i;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(f, "{\"stage\":");
	json_put_string(f, stage, strlen(stage));
	fprintf(f, ",\"time\":\"%s.%03ldZ\"", when, ts.tv_nsec / 1000000);
	for (i = 0; i < n; i++) {
		fprintf(f, ",\"%s\":", m[i].key);
		put_value(f, m[i].value, "null");
	}
	fputs("}\n", f);
	return fflush(f) == 0 && !ferror(f) ? 0 : -1;
}

int
stats_metrics(const char *path, const char *stage, const struct metric *m, int n)
{
	size_t len = strlen(path);
	char *tmp = malloc(len + 16);
	FILE *f;
	int i, ok;

	if (tmp == NULL)
		die("out of memory");
	snprintf(tmp, len + 16, "%s.%ld", path, (long)getpid());
	if ((f = fopen(tmp, "w")) == NULL) {
		log_error("cannot write metrics file \"%s\":", tmp);
		free(tmp);
		return -1;
	}
	for (i = 0; i < n; i++) {
		const char *total = m[i].counter ? "_total" : "";

		fprintf(f, "# HELP pgcdc_%s%s %s\n", m[i].key, total, m[i].help);
		fprintf(f, "# TYPE pgcdc_%s%s %s\n", m[i].key, total, m[i].counter ? "counter" : "gauge");
		if (isnan(m[i].value))
			continue;
		fprintf(f, "pgcdc_%s%s{stage=\"%s\"} ", m[i].key, total, stage);
		put_value(f, m[i].value, "NaN");
		fputc('\n', f);
	}
	ok = fflush(f) == 0 && !ferror(f);
	if (fclose(f) != 0)
		ok = 0;
	if (!ok || rename(tmp, path) < 0) {
		log_error("cannot write metrics file \"%s\":", path);
		unlink(tmp);
		free(tmp);
		return -1;
	}
	free(tmp);
	return 0;
}

int
reporter_open(struct reporter *r, const char *stage, long seconds, const char *file, const char *metrics)
{
	memset(r, 0, sizeof *r);
	r->stage = stage;
	r->lines = seconds > 0;
	r->clock.interval_ms = seconds > 0 ? seconds * 1000 : metrics ? 10000 : 0;
	r->metrics = metrics;
	r->out = stderr;
	if (file && (r->out = fopen(file, "a")) == NULL) {
		log_error("cannot open stats file \"%s\":", file);
		return -1;
	}
	return 0;
}

/* Ask for the figures and write them: a line if line, the metrics file if there is one. */
static int
reporter_write(struct reporter *r, int line, int (*fill)(void *arg, struct metric *m, int max), void *arg)
{
	struct metric m[32];
	int n, status = 0;

	n = fill(arg, m, (int)(sizeof m / sizeof *m));
	if (line && stats_line(r->out, r->stage, m, n) < 0) {
		log_error("cannot write stats:");
		status = -1;
	}
	if (r->metrics && stats_metrics(r->metrics, r->stage, m, n) < 0)
		status = -1;
	return status;
}

int
reporter_tick(struct reporter *r, int (*fill)(void *arg, struct metric *m, int max), void *arg)
{
	int due = stats_due(&r->clock);

	if (due == 0 || (due == 1 && !r->lines && r->metrics == NULL))
		return 0;
	return reporter_write(r, due == 2 || r->lines, fill, arg);
}

int
reporter_final(struct reporter *r, int (*fill)(void *arg, struct metric *m, int max), void *arg)
{
	if (!r->lines && r->metrics == NULL)
		return 0;
	return reporter_write(r, r->lines, fill, arg);
}

void
reporter_close(struct reporter *r)
{
	if (r->out && r->out != stderr)
		fclose(r->out);
	r->out = NULL;
}
