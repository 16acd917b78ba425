#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "opt.h"

long long
opt_int(const char *opt, const char *arg, long long min, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(arg, &end, 10);
	if (errno != 0 || end == arg || *end != '\0')
		usage_error("invalid value \"%s\" for option %s", arg, opt);
	if (v < min || v > max)
		usage_error("%s must be in range %lld..%lld", opt, min, max);
	return v;
}

double
opt_double(const char *opt, const char *arg, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(arg, &end);
	if (errno != 0 || end == arg || *end != '\0' || v != v)
		usage_error("invalid value \"%s\" for option %s", arg, opt);
	if (v < min || v > max)
		usage_error("%s must be in range %g..%g", opt, min, max);
	return v;
}

/* --help and --version succeed only once their text is out: a failed write is an error. */
static noreturn void
print_exit(const char *what)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		die("cannot write the %s:", what);
	exit(EXIT_OK);
}

void
opt_help(const char *usage)
{
	fputs(usage, stdout);
	print_exit("help");
}

void
opt_version(void)
{
	printf("%s %s\n", progname, PGCDC_VERSION);
	print_exit("version");
}

void
opt_bad(int c, char *const *argv)
{
	const char *arg = argv[optind - 1];
	const char *what = c == ':' ? "missing argument for" : "unrecognized";

	if (optopt != 0 && strncmp(arg, "--", 2) != 0)
		usage_error("%s option \"-%c\"", what, optopt);
	usage_error("%s option \"%.*s\"", what, (int)strcspn(arg, "="), arg);
}

void
opt_general(int c, char *const *argv, const char *usage)
{
	switch (c) {
	case 'v': log_level = LOG_DEBUG; break;
	case 'q': log_level = LOG_ERROR; break;
	case 'h': opt_help(usage);
	case 'V': opt_version();
	default: opt_bad(c, argv);
	}
}
