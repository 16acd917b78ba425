#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ackfile.h"

int
ack_write(const char *path, uint64_t n)
{
	char tmp[4096], buf[32];
	int fd, len, saved;

	/* both ends of a pipe write the file: each needs its own temporary */
	if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp) {
		errno = ENAMETOOLONG;
		return -1;
	}
	len = snprintf(buf, sizeof buf, "%" PRIu64 "\n", n);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	if (write(fd, buf, len) != len || close(fd) != 0) {
		saved = errno ? errno : EIO;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	return rename(tmp, path);
}

int
ack_read(const char *path, uint64_t *n)
{
	char buf[32], *end;
	ssize_t len;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	len = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (len <= 0)
		return -1;
	buf[len] = '\0';
	if (buf[0] < '0' || buf[0] > '9')
		return -1;
	errno = 0;
	*n = strtoull(buf, &end, 10);
	if (errno != 0 || end == buf || (*end != '\n' && *end != '\0'))
		return -1;
	return 0;
}
