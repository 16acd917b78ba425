/*
 * sd_notify(3) without libsystemd: the protocol is a datagram of
 * newline-separated assignments to an AF_UNIX socket, whose path (or, with a
 * leading '@', abstract name) is in $NOTIFY_SOCKET.  A message that cannot be
 * sent is a debug message only: the service runs on, and systemd says what
 * it did not hear (a start timeout, a watchdog).
 */
#include <errno.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "notify.h"

static int fd = -2;	/* -2: not opened yet, -1: nothing to notify */
static struct sockaddr_un addr;
static socklen_t addrlen;

static int
notify_open(void)
{
	const char *path = getenv("NOTIFY_SOCKET");
	size_t len;

	if (fd != -2)
		return fd;
	fd = -1;
	if (path == NULL || (path[0] != '/' && path[0] != '@') || (len = strlen(path)) >= sizeof addr.sun_path)
		return fd;
	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path, path, len);
	if (path[0] == '@')
		addr.sun_path[0] = '\0';	/* an abstract socket */
	addrlen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0)
		log_debug("cannot open a socket to notify systemd:");
	return fd;
}

int
notify(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int len;

	if (notify_open() < 0)
		return 0;
	va_start(ap, fmt);
	len = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (len < 0)
		return -1;
	if ((size_t)len >= sizeof buf - 1)
		len = sizeof buf - 2;
	/* one assignment per line, the last one too: readers of the socket see lines */
	if (len == 0 || buf[len - 1] != '\n')
		buf[len++] = '\n';
	if (sendto(fd, buf, (size_t)len, MSG_NOSIGNAL, (struct sockaddr *)&addr, addrlen) < 0) {
		log_debug("cannot notify systemd (%s):", getenv("NOTIFY_SOCKET"));
		return -1;
	}
	return 0;
}

long
notify_watchdog_ms(void)
{
	const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
	long long us;

	if (usec == NULL || (pid != NULL && atol(pid) != (long)getpid()))
		return 0;
	us = atoll(usec);
	return us > 0 ? (long)(us / 2000) : 0;
}

void
notify_watchdog(void)
{
	static double last;
	long ms = notify_watchdog_ms();
	double now;

	if (ms <= 0)
		return;
	now = mono_ms();
	if (last != 0 && now - last < ms)
		return;
	last = now;
	notify("WATCHDOG=1");
}
