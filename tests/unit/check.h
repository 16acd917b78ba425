/*
 * The assertion of the unit tests: CHECK(condition, printf format, ...)
 * counts a pass, or counts a failure and prints it with its line.
 */
#ifndef PGCDC_UNIT_CHECK_H
#define PGCDC_UNIT_CHECK_H

#include <stdarg.h>
#include <stdio.h>

static int failed, passed;

#define CHECK(cond, ...) check((cond), __LINE__, __VA_ARGS__)

static void __attribute__((format(printf, 3, 4)))
check(int ok, int line, const char *fmt, ...)
{
	va_list ap;

	if (ok) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL (line %d): ", line);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

#endif
