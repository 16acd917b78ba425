/*
 * The notify relay (relay.h).  Each stage gets its own socket, so a
 * datagram's socket says which stage sent it, whatever process of the stage
 * (a script's child) wrote it.  The names are abstract (Linux): nothing on
 * the file system to clean up, and they work under ProtectSystem=strict.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "notify.h"
#include "relay.h"

/* A datagram socket bound to the abstract name "@pgcdc-pair/PID/WHICH". */
static int
open_one(char *name, size_t size, const char *which)
{
	struct sockaddr_un addr;
	size_t len;
	int fd;

	snprintf(name, size, "@pgcdc-pair/%ld/%s", (long)getpid(), which);
	len = strlen(name);
	memset(&addr, 0, sizeof addr);
	addr.sun_family = AF_UNIX;
	memcpy(addr.sun_path + 1, name + 1, len - 1);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0)) < 0 ||
	    bind(fd, (struct sockaddr *)&addr, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
		log_error("cannot open a socket for the stages' notifications:");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

int
relay_open(struct relay *r, const char *up, const char *down)
{
	memset(r, 0, sizeof *r);
	r->fd[0] = r->fd[1] = -1;
	r->stage[0] = up;
	r->stage[1] = down;
	if (getenv("NOTIFY_SOCKET") == NULL)
		return 0;
	if ((r->fd[0] = open_one(r->name[0], sizeof r->name[0], "up")) < 0 ||
	    (r->fd[1] = open_one(r->name[1], sizeof r->name[1], "down")) < 0) {
		relay_close(r);
		return -1;
	}
	return 0;
}

void
relay_child(const struct relay *r, int i)
{
	char pid[24];

	if (r->fd[i] < 0)
		return;
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	/* the stage's watchdog pings are for the relay, at the unit's interval */
	if (setenv("NOTIFY_SOCKET", r->name[i], 1) != 0 ||
	    (getenv("WATCHDOG_USEC") && setenv("WATCHDOG_PID", pid, 1) != 0))
		log_warning("cannot pass the notify socket to %s", r->stage[i]);
}

/* One assignment of stage i ("READY=1", "STATUS=..."). */
static void
take(struct relay *r, int i, const char *a)
{
	if (strcmp(a, "READY=1") == 0) {
		r->ready[i] = 1;
		if (r->ready[0] && r->ready[1] && !r->told_ready) {
			r->told_ready = 1;
			notify("READY=1");
		}
	} else if (strncmp(a, "STATUS=", 7) == 0) {
		snprintf(r->status[i], sizeof r->status[i], "%s", a + 7);
		notify("STATUS=%s: %s; %s: %s", r->stage[0], r->status[0][0] ? r->status[0] : "starting",
		    r->stage[1], r->status[1][0] ? r->status[1] : "starting");
	} else if (strcmp(a, "WATCHDOG=1") == 0) {
		/* the pair is alive while both are: a hung stage stops the pings */
		r->pinged[i] = 1;
		if (r->pinged[0] && r->pinged[1]) {
			r->pinged[0] = r->pinged[1] = 0;
			notify("WATCHDOG=1");
		}
	} else if (strcmp(a, "STOPPING=1") == 0 && !r->told_stopping) {
		r->told_stopping = 1;
		notify("STOPPING=1");
	}
}

void
relay_read(struct relay *r, int i)
{
	char buf[4096], *line, *next;
	ssize_t n;

	while ((n = recv(r->fd[i], buf, sizeof buf - 1, 0)) >= 0) {
		buf[n] = '\0';
		for (line = buf; line != NULL && *line != '\0'; line = next) {
			if ((next = strchr(line, '\n')) != NULL)
				*next++ = '\0';
			take(r, i, line);
		}
	}
	if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
		log_debug("cannot read %s's notifications:", r->stage[i]);
}

void
relay_close(struct relay *r)
{
	int i;

	for (i = 0; i < 2; i++) {
		if (r->fd[i] >= 0)
			close(r->fd[i]);
		r->fd[i] = -1;
	}
}
