/*
 * The figures a long-running tool reports (--stats, SIGUSR1, --metrics):
 * one JSON object per line, and the same figures in Prometheus' text
 * exposition format for node_exporter's textfile collector, written
 * atomically.  Each figure is a key of the JSON object; its metric is
 * pgcdc_KEY (a counter: pgcdc_KEY_total), labelled with the stage.  A
 * figure of several samples (one per partition, per table) is an object
 * in the JSON line, {NAME:VALUE,...}, and one sample per NAME with the
 * sample's own labels in the metrics file.
 */
#ifndef PGCDC_STATS_H
#define PGCDC_STATS_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

struct metric {
	const char *key;
	const char *help;	/* HELP of the metric */
	int counter;		/* a count that only grows, else a gauge */
	double value;		/* NAN: not known (yet): null, and no sample */
	const char *labels;	/* NULL, or one sample of several: its labels, as topic="t",partition="0" */
	const char *name;	/* with labels: its key in the JSON object */
};

/* The figures of one report, as a tool's fill callback adds them. */
struct figures {
	struct metric *m;
	int n, cap;
};

void fig_add(struct figures *f, const char *key, const char *help, int counter, double value);
/* One sample of several; samples of one key must be added one after the other. */
void fig_sample(struct figures *f, const char *key, const char *help, int counter, double value,
    const char *labels, const char *name);

/*
 * The HELP of the figures several stages report: Prometheus wants one text
 * per metric name, and node_exporter reads the files of every stage of a
 * host together.
 */
#define HELP_LINES_IN "Lines read from standard input."
#define HELP_LINES_OUT "Lines written to standard output."
#define HELP_LINES_ACKNOWLEDGED "Lines made durable, as the ack file counts them: acknowledged downstream " \
	"(pg-cdc-tail, kafka-sub; every line written without --ack), or delivered, committed or dead-lettered " \
	"(kafka-pub, pg-upsert)."
#define HELP_LINES_PER_SECOND "Lines per second since the report before: written (pg-cdc-tail, kafka-sub) " \
	"or acknowledged (kafka-pub, pg-upsert)."
#define HELP_DEAD_LETTERED "Lines or messages written to the dead letters."
#define HELP_RETRIES "Attempts made again after a transient failure: batches (pg-upsert), requests to " \
	"the brokers (kafka-pub)."
#define HELP_POS "The pos of the last event written (pg-cdc-tail) or applied (pg-upsert)."
#define HELP_SECONDS_BEHIND "Seconds the capture is behind: the age of the oldest change committed and " \
	"not yet written (trigger mode), or of the commit of the transaction being written while more is to come " \
	"(logical mode)."

/* The labels of a sample, name="value" pairs for (name, value, ..., NULL), escaped; free() it. */
char *stats_labels(const char *name, ...);

/* A count's rate between reports: stats_rate_start() at the start, then stats_rate() at each report. */
struct stats_rate {
	double count, at;
};

void stats_rate_start(struct stats_rate *r, double count);
/* count's growth per second since the call before; NAN when no time has passed. */
double stats_rate(struct stats_rate *r, double count);

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
int stats_line(FILE *f, const char *stage, const struct figures *fig);
/*
 * The Prometheus text of the figures to path (mode 0644), through a
 * temporary renamed over it, every sample labelled stage="STAGE" and labels
 * (NULL, or name="value",...); -1 after logging.
 */
int stats_metrics(const char *path, const char *stage, const char *labels, const struct figures *fig);

/* The options every reporting tool takes. */
struct stats_opts {
	int seconds;		/* --stats=SECONDS (0: only on SIGUSR1) */
	const char *file;	/* --stats-file=FILE (NULL: stderr) */
	const char *metrics;	/* --metrics=FILE */
	char *labels;		/* --metrics-label=NAME=VALUE...: name="value",... or NULL */
};

/* The options' lines of --help, their getopt_long entries (with <getopt.h>), and their parsing. */
#define STATS_USAGE \
"      --stats=SECONDS     a JSON line of figures on stderr every SECONDS (and on SIGUSR1)\n" \
"      --stats-file=FILE   append those lines to FILE instead\n" \
"      --metrics=FILE      keep the figures in FILE for Prometheus (node_exporter's textfile)\n" \
"      --metrics-label=NAME=VALUE  a label of every sample in FILE (repeatable)\n"
enum { OPT_STATS = 0x1000, OPT_STATS_FILE, OPT_METRICS, OPT_METRICS_LABEL };
#define STATS_LONGOPTS \
	{ "stats", required_argument, NULL, OPT_STATS }, \
	{ "stats-file", required_argument, NULL, OPT_STATS_FILE }, \
	{ "metrics", required_argument, NULL, OPT_METRICS }, \
	{ "metrics-label", required_argument, NULL, OPT_METRICS_LABEL }
/* Take getopt's c into o if it is one of those: 1, else 0; a bad value exits 2. */
int stats_option(struct stats_opts *o, int c, const char *arg);

/* What the tool tells: its figures, and the one line of systemd's STATUS=. */
struct report_ops {
	void (*fill)(void *arg, struct figures *f);
	void (*status)(void *arg, char *buf, size_t size);
};

/*
 * What --stats=SECONDS, --stats-file=FILE and --metrics=FILE ask: a JSON
 * line every SECONDS and on SIGUSR1 (on stderr, or appended to FILE), and
 * the metrics file rewritten as often (every 10 s without --stats); and,
 * under systemd, STATUS= once a second and WATCHDOG=1 as often as asked.
 */
struct reporter {
	const char *stage;
	struct stats_clock clock;
	int lines;		/* --stats given: a line at each interval, not only on SIGUSR1 */
	FILE *out;
	const char *file;	/* --stats-file, opened again on SIGHUP */
	sig_atomic_t reopened;	/* the sig_reopen it was last opened at */
	const char *metrics;
	const char *labels;	/* --metrics-label's */
	struct report_ops ops;
	void *arg;
	double status_at;	/* when STATUS= was sent last */
	int notifying;		/* run by systemd: STATUS= is due each second */
	struct figures fig;
};

/* Set up r; -1 after logging when the stats file cannot be opened. */
int reporter_open(struct reporter *r, const char *stage, const struct stats_opts *o,
    const struct report_ops *ops, void *arg);
/* The reports due now, STATUS= and WATCHDOG=1: call from the main loop; -1 on a write error. */
int reporter_tick(struct reporter *r);
/* The sooner of wait (ms, -1: none) and the next tick due, for poll(2). */
long reporter_wait(const struct reporter *r, long wait);
/* The last report, at exit: a line with --stats, the metrics file with --metrics. */
int reporter_final(struct reporter *r);
void reporter_close(struct reporter *r);

#endif
