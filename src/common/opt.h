/* Range-checked parsing of numeric option values (no atoi). */
#ifndef PGCDC_OPT_H
#define PGCDC_OPT_H

#include <stdint.h>
#include <stdnoreturn.h>

/* Parse a decimal integer in [min, max]; a bad value is a usage error naming opt. */
long long opt_int(const char *opt, const char *arg, long long min, long long max);

/* Parse a non-negative decimal number (fractions allowed) in [min, max]. */
double opt_double(const char *opt, const char *arg, double min, double max);

/*
 * Report what getopt_long returned ':' (missing argument) or '?' (unknown
 * option) for, as a usage error.  Tools call getopt_long with opterr = 0 and
 * an optstring starting with ':', so getopt itself prints nothing.
 */
noreturn void opt_bad(int c, char *const *argv);

/*
 * The options every tool has, for the default: of its getopt_long switch:
 * -v more verbose, -q errors only, -h the usage on stdout, -V the version;
 * anything else goes to opt_bad.
 */
void opt_general(int c, char *const *argv, const char *usage);

/* The long options of opt_general, and the end: the last entries of a tool's table. */
#define OPT_GENERAL_LONG \
	{ "verbose", no_argument, NULL, 'v' }, \
	{ "quiet", no_argument, NULL, 'q' }, \
	{ "help", no_argument, NULL, 'h' }, \
	{ "version", no_argument, NULL, 'V' }, \
	{ NULL, 0, NULL, 0 }

/* Print usage on stdout and exit 0; exit 1 if it cannot be written. */
noreturn void opt_help(const char *usage);

/* Print "prog VERSION" on stdout and exit 0; exit 1 if it cannot be written. */
noreturn void opt_version(void);

#endif
