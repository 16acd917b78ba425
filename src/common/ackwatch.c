#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "ackwatch.h"

int
ackwatch_open(const char *path)
{
	char *copy = strdup(path);
	int fd, saved;

	if (copy == NULL)
		return -1;
	fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (fd >= 0 && inotify_add_watch(fd, dirname(copy), IN_MOVED_TO | IN_CLOSE_WRITE) < 0) {
		saved = errno;
		close(fd);
		fd = -1;
		errno = saved;
	}
	free(copy);
	return fd;
}

void
ackwatch_drain(int fd)
{
	char buf[4096];

	while (read(fd, buf, sizeof buf) > 0)
		;
}
