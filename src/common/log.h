/* Diagnostics on stderr as "tool: message"; stdout carries data only. */
#ifndef PGCDC_LOG_H
#define PGCDC_LOG_H

#include <stdnoreturn.h>

/* Exit statuses shared by every tool. */
enum exit_status {
	EXIT_OK = 0,		/* input ended, or stopped by SIGINT/SIGTERM */
	EXIT_RUNTIME = 1,	/* runtime failure */
	EXIT_USAGE = 2		/* bad command line */
};

enum log_level { LOG_QUIET = 0, LOG_ERROR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

extern const char *progname;
extern int log_level;

void log_init(const char *argv0);

/*
 * A format ending in ':' has ": strerror(errno)" appended, as in sbase's
 * eprintf.  Messages are lowercase, without a final period.
 */
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warning(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
noreturn void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* strdup, or die "out of memory". */
char *xstrdup(const char *s);

/* "prog: error: msg" then the --help hint; exits with EXIT_USAGE. */
noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
