/*
 * Reports of figures (stats.h).  The JSON line is for people and scripts
 * (jq), the metrics file for Prometheus: node_exporter reads every *.prom
 * file of its textfile directory at each scrape, so the file is replaced
 * whole by rename(2), never seen half written.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "jsonout.h"
#include "log.h"
#include "notify.h"
#include "opt.h"
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

void
fig_sample(struct figures *f, const char *key, const char *help, int counter, double value,
    const char *labels, const char *name)
{
	if (f->n == f->cap) {
		f->cap = f->cap ? 2 * f->cap : 32;
		if ((f->m = realloc(f->m, (size_t)f->cap * sizeof *f->m)) == NULL)
			die("out of memory");
	}
	f->m[f->n++] = (struct metric){ key, help, counter, value, labels, name };
}

void
fig_add(struct figures *f, const char *key, const char *help, int counter, double value)
{
	fig_sample(f, key, help, counter, value, NULL, NULL);
}

char *
stats_labels(const char *name, ...)
{
	size_t len = 0, cap = 64;
	char *buf = malloc(cap);
	const char *v;
	va_list ap;

	if (buf == NULL)
		die("out of memory");
	va_start(ap, name);
	for (; name != NULL; name = va_arg(ap, const char *)) {
		v = va_arg(ap, const char *);
		/* the worst case: each byte of the value escaped, and name="", */
		while (len + strlen(name) + 2 * strlen(v) + 5 > cap)
			if ((buf = realloc(buf, cap *= 2)) == NULL)
				die("out of memory");
		len += (size_t)sprintf(buf + len, "%s%s=\"", len ? "," : "", name);
		for (; *v; v++) {
			if (*v == '\\' || *v == '"' || *v == '\n')
				buf[len++] = '\\';
			buf[len++] = *v == '\n' ? 'n' : *v;
		}
		buf[len++] = '"';
	}
	va_end(ap);
	buf[len] = '\0';
	return buf;
}

void
stats_rate_start(struct stats_rate *r, double count)
{
	r->count = count;
	r->at = mono_ms();
}

double
stats_rate(struct stats_rate *r, double count)
{
	double now = mono_ms(), rate = NAN;

	if (r->at > 0 && now > r->at)
		rate = (count - r->count) * 1000 / (now - r->at);
	r->count = count;
	r->at = now;
	return rate;
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

/* Is m[i] a sample of the same figure as the one before it? */
static int
same_figure(const struct metric *m, int i)
{
	return i > 0 && strcmp(m[i].key, m[i - 1].key) == 0;
}

static void
put_line(FILE *f, const char *stage, const struct figures *fig)
{
	const struct metric *m = fig->m;
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
	for (i = 0; i < fig->n; i++) {
		if (m[i].labels == NULL || !same_figure(m, i))
			fprintf(f, ",\"%s\":%s", m[i].key, m[i].labels ? "{" : "");
		else
			fputc(',', f);
		if (m[i].labels) {
			json_put_string(f, m[i].name, strlen(m[i].name));
			fputc(':', f);
		}
		put_value(f, m[i].value, "null");
		if (m[i].labels && (i + 1 == fig->n || strcmp(m[i + 1].key, m[i].key) != 0))
			fputc('}', f);
	}
	fputs("}\n", f);
}

/*
 * The line is made whole, then written at once: stderr is unbuffered, and
 * the stages of a pipeline often share it (cdc-source, cdc-sink), so that a
 * line written piecemeal would be mixed with another stage's.
 */
int
stats_line(FILE *f, const char *stage, const struct figures *fig)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *mem = open_memstream(&buf, &len);
	int ok;

	if (mem == NULL)
		die("out of memory");
	put_line(mem, stage, fig);
	if (fclose(mem) != 0)
		die("out of memory");
	ok = fwrite(buf, 1, len, f) == len && fflush(f) == 0 && !ferror(f);
	free(buf);
	return ok ? 0 : -1;
}

/* The exposition of the figures: HELP and TYPE once per metric, then its samples. */
static void
put_metrics(FILE *f, const char *stage, const char *labels, const struct figures *fig)
{
	const struct metric *m = fig->m;
	int i;

	for (i = 0; i < fig->n; i++) {
		const char *total = m[i].counter ? "_total" : "";

		if (!same_figure(m, i)) {
			fprintf(f, "# HELP pgcdc_%s%s %s\n", m[i].key, total, m[i].help);
			fprintf(f, "# TYPE pgcdc_%s%s %s\n", m[i].key, total, m[i].counter ? "counter" : "gauge");
		}
		if (isnan(m[i].value))
			continue;
		fprintf(f, "pgcdc_%s%s{stage=\"%s\"%s%s%s%s} ", m[i].key, total, stage,
		    labels ? "," : "", labels ? labels : "", m[i].labels ? "," : "", m[i].labels ? m[i].labels : "");
		put_value(f, m[i].value, "NaN");
		fputc('\n', f);
	}
}

int
stats_metrics(const char *path, const char *stage, const char *labels, const struct figures *fig)
{
	size_t len = strlen(path);
	char *tmp = malloc(len + 16);
	FILE *f;
	int ok;

	if (tmp == NULL)
		die("out of memory");
	snprintf(tmp, len + 16, "%s.%ld", path, (long)getpid());
	if ((f = fopen(tmp, "w")) == NULL) {
		log_error("cannot write metrics file \"%s\":", tmp);
		free(tmp);
		return -1;
	}
	/* node_exporter runs as a user of its own: figures, not data, for all to read */
	if (fchmod(fileno(f), 0644) != 0)
		log_warning("cannot make metrics file \"%s\" readable to all:", tmp);
	put_metrics(f, stage, labels, fig);
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

/*
 * --metrics-label=NAME=VALUE: a name Prometheus takes, not one of the
 * labels the figures have of their own or one it reserves (__...).  The
 * labels live as long as the process: options are read once.
 */
static char *all_labels;

static void
add_label(struct stats_opts *o, const char *arg)
{
	static const char *const own[] = { "stage", "table", "topic", "partition" };
	const char *eq = strchr(arg, '=');
	size_t len = eq ? (size_t)(eq - arg) : 0, i;
	char *name, *label, *all;

	if (len == 0 || strspn(arg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_0123456789") < len ||
	    (arg[0] >= '0' && arg[0] <= '9') || strncmp(arg, "__", 2) == 0)
		usage_error("--metrics-label takes NAME=VALUE, NAME a Prometheus label name, not \"%s\"", arg);
	for (i = 0; i < sizeof own / sizeof *own; i++)
		if (strlen(own[i]) == len && strncmp(arg, own[i], len) == 0)
			usage_error("--metrics-label: the label \"%s\" is the figures' own", own[i]);
	if ((name = strndup(arg, len)) == NULL)
		die("out of memory");
	label = stats_labels(name, eq + 1, NULL);
	if (asprintf(&all, "%s%s%s", o->labels ? o->labels : "", o->labels ? "," : "", label) < 0)
		die("out of memory");
	free(all_labels);
	free(label);
	free(name);
	o->labels = all_labels = all;
}

int
stats_option(struct stats_opts *o, int c, const char *arg)
{
	switch (c) {
	case OPT_STATS: o->seconds = (int)opt_int("--stats", arg, 1, 86400); return 1;
	case OPT_STATS_FILE: o->file = arg; return 1;
	case OPT_METRICS: o->metrics = arg; return 1;
	case OPT_METRICS_LABEL: add_label(o, arg); return 1;
	default: return 0;
	}
}

int
reporter_open(struct reporter *r, const char *stage, const struct stats_opts *o,
    const struct report_ops *ops, void *arg)
{
	memset(r, 0, sizeof *r);
	r->stage = stage;
	r->lines = o->seconds > 0;
	r->clock.interval_ms = o->seconds > 0 ? o->seconds * 1000L : o->metrics ? 10000 : 0;
	r->metrics = o->metrics;
	r->labels = o->labels;
	r->ops = *ops;
	r->arg = arg;
	r->notifying = getenv("NOTIFY_SOCKET") != NULL;
	r->out = stderr;
	r->file = o->file;
	r->reopened = sig_reopen;
	if (o->file && (r->out = fopen(o->file, "a")) == NULL) {
		log_error("cannot open stats file \"%s\":", o->file);
		/* the tool stops: its reporter_final must not write to no file */
		r->out = stderr;
		r->lines = 0;
		r->metrics = NULL;
		return -1;
	}
	return 0;
}

/* Ask for the figures and write them: a line if line, the metrics file if there is one. */
static int
reporter_write(struct reporter *r, int line)
{
	int status = 0;

	r->fig.n = 0;
	r->ops.fill(r->arg, &r->fig);
	if (line && stats_line(r->out, r->stage, &r->fig) < 0) {
		log_error("cannot write stats:");
		status = -1;
	}
	if (r->metrics && stats_metrics(r->metrics, r->stage, r->labels, &r->fig) < 0)
		status = -1;
	return status;
}

/* After SIGHUP, the stats file again by name (logrotate); the old one kept if it cannot be. */
static void
reopen_if_asked(struct reporter *r)
{
	FILE *f;

	if (r->file == NULL || r->out == stderr || r->reopened == sig_reopen)
		return;
	r->reopened = sig_reopen;
	if ((f = fopen(r->file, "a")) == NULL) {
		log_warning("cannot open stats file \"%s\" again; its lines still go to the file it was:", r->file);
		return;
	}
	fclose(r->out);
	r->out = f;
}

int
reporter_tick(struct reporter *r)
{
	char status[512];
	double now;
	int due;

	notify_watchdog();
	reopen_if_asked(r);
	if (r->notifying && r->ops.status && (now = mono_ms()) - r->status_at >= 1000) {
		r->status_at = now;
		r->ops.status(r->arg, status, sizeof status);
		notify("STATUS=%s", status);
	}
	due = stats_due(&r->clock);
	if (due == 0 || (due == 1 && !r->lines && r->metrics == NULL))
		return 0;
	return reporter_write(r, due == 2 || r->lines);
}

/* The sooner of two waits for poll(2), -1 being none. */
static long
earlier(long a, long b)
{
	return a < 0 ? b : b < 0 || a < b ? a : b;
}

long
reporter_wait(const struct reporter *r, long wait)
{
	long dog = notify_watchdog_ms();

	wait = earlier(wait, stats_wait(&r->clock));
	wait = earlier(wait, dog > 0 ? dog : -1);
	if (r->notifying && r->ops.status)
		wait = earlier(wait, 1000);
	return wait;
}

int
reporter_final(struct reporter *r)
{
	if (!r->lines && r->metrics == NULL)
		return 0;
	return reporter_write(r, r->lines);
}

void
reporter_close(struct reporter *r)
{
	if (r->out && r->out != stderr)
		fclose(r->out);
	r->out = NULL;
	free(r->fig.m);
	r->fig.m = NULL;
}
