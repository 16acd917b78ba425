/*
 * The figures a long-running tool reports (--stats, SIGUSR1, --metrics):
 * one JSON object per line, and the same figures in Prometheus' text
 * exposition format for node_exporter's textfile collector, written
 * atomically.  Each figure is a key of the JSON object; its metric is
 * pgcdc_KEY (a counter: pgcdc_KEY_total), labelled with the stage.
 */
#ifndef PGCDC_STATS_H
#define PGCDC_STATS_H

#include <stdio.h>

struct metric {
	const char *key;
	const char *help;	/* HELP of the metric */
	int counter;		/* a count that only grows, else a gauge */
	double value;		/* NAN: not known (yet): null, and no sample */
};

/* When reports are due: every interval_ms (0: only on SIGUSR1). */
struct stats_clock {
	long interval_ms;
	double next;
};

/* Is a report due now?  1: its interval passed, 2: SIGUSR1 came, 0: not. */
int stats_due(struct stats_clock *c);
/* How long until the next one is due, in ms for poll(2): -1 never. */
long stats_wait(const struct stats_clock *c);

/* {"stage":STAGE,"time":"...",KEY:VALUE,...} and a newline; -1 on a write error. */
int stats_line(FILE *f, const char *stage, const struct metric *m, int n);
/* The Prometheus text of the figures to path, through a temporary renamed over it; -1 after logging. */
int stats_metrics(const char *path, const char *stage, const struct metric *m, int n);

/*
 * What a tool's --stats=SECONDS, --stats-file=FILE and --metrics=FILE ask:
 * a JSON line every SECONDS and on SIGUSR1 (on stderr, or appended to
 * FILE), and the metrics file rewritten as often (every 10 s without
 * --stats).
 */
struct reporter {
	const char *stage;
	struct stats_clock clock;
	int lines;		/* --stats given: a line at each interval, not only on SIGUSR1 */
	FILE *out;
	const char *metrics;
};

/* Set up r; -1 after logging when FILE cannot be opened. */
int reporter_open(struct reporter *r, const char *stage, long seconds, const char *file, const char *metrics);
/* When a report is due, ask fill for the figures (at most max) and write them; -1 on a write error. */
int reporter_tick(struct reporter *r, int (*fill)(void *arg, struct metric *m, int max), void *arg);
/* The last report, at exit: a line with --stats, the metrics file with --metrics. */
int reporter_final(struct reporter *r, int (*fill)(void *arg, struct metric *m, int max), void *arg);
void reporter_close(struct reporter *r);

#endif
