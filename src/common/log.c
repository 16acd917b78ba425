#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

const char *progname = "pgcdc";
int log_level = LOG_INFO;

void
log_init(const char *argv0)
{
	const char *slash = strrchr(argv0, '/');

	progname = slash ? slash + 1 : argv0;
}

static void
vlog(int level, const char *prefix, const char *fmt, va_list ap)
{
	int saved = errno;
	size_t len = strlen(fmt);

	if (level > log_level)
		return;
	flockfile(stderr);	/* whole lines, even from several threads */
	fprintf(stderr, "%s: %s", progname, prefix);
	vfprintf(stderr, fmt, ap);
	if (len > 0 && fmt[len - 1] == ':')
		fprintf(stderr, " %s", strerror(saved));
	fputc('\n', stderr);
	funlockfile(stderr);
}

#define DEFINE_LOG(name, level, prefix)			\
	void name(const char *fmt, ...)			\
	{						\
		va_list ap;				\
		va_start(ap, fmt);			\
		vlog(level, prefix, fmt, ap);		\
		va_end(ap);				\
	}

DEFINE_LOG(log_error, LOG_ERROR, "")
DEFINE_LOG(log_warning, LOG_WARNING, "warning: ")
DEFINE_LOG(log_info, LOG_INFO, "")
DEFINE_LOG(log_debug, LOG_DEBUG, "debug: ")

void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERROR, "", fmt, ap);
	va_end(ap);
	exit(EXIT_RUNTIME);
}

void
usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_ERROR, "error: ", fmt, ap);
	va_end(ap);
	fprintf(stderr, "Try \"%s --help\" for more information.\n", progname);
	exit(EXIT_USAGE);
}

char *
xstrdup(const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		die("out of memory");
	return d;
}
