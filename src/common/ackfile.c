#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ackfile.h"
#include "privfile.h"
#include "log.h"

#define MAX_DIGITS 20		/* UINT64_MAX has 20 */

/*
 * Create the temporary exclusively, never through a link.  One of the same
 * name is left by a crashed process that had our pid: ack_check_dir made
 * sure the directory is ours alone, so it is ours to remove.
 */
static int
open_temp(const char *tmp)
{
	const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
	int fd = open(tmp, flags, 0600);

	if (fd < 0 && errno == EEXIST && unlink(tmp) == 0)
		fd = open(tmp, flags, 0600);
	return fd;
}

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
	if ((fd = open_temp(tmp)) < 0)
		return -1;
	if (write(fd, buf, len) != len || close(fd) != 0) {
		saved = errno ? errno : EIO;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	if (rename(tmp, path) != 0) {
		saved = errno;
		unlink(tmp);
		errno = saved;
		return -1;
	}
	return 0;
}

const char *
ack_parse(const char *buf, size_t len, uint64_t *n)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0)
		return "it is empty";
	if (len > MAX_DIGITS + 1)
		return "it is longer than 20 digits and a newline";
	if (len == 1 || buf[len - 1] != '\n')
		return "it is not one line of decimal digits";
	for (i = 0; i < len - 1; i++) {
		unsigned d = (unsigned char)buf[i] - '0';

		if (d > 9)
			return "it is not one line of decimal digits";
		if (v > (UINT64_MAX - d) / 10)
			return "its number is too large";
		v = v * 10 + d;
	}
	*n = v;
	return NULL;
}

const char *
ack_read(const char *path, uint64_t *n)
{
	char buf[MAX_DIGITS + 8];
	struct stat st;
	ssize_t len;
	int fd, saved;

	/* O_NONBLOCK: a fifo planted in its place must not hang the reader */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? "it does not exist" :
		    errno == ELOOP ? "it is a symbolic link" : strerror(errno);
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return "it is not a regular file";
	}
	len = read(fd, buf, sizeof buf);
	saved = errno;
	close(fd);
	if (len < 0)
		return strerror(saved);
	return ack_parse(buf, len, n);
}

int
ack_check_dir(const char *path)
{
	return check_private_dir(path, "ack file");
}

/* Take the role's byte of the lock file, or say who holds it. */
static int
take_lock(int fd, enum ack_role role, const char *path, const char *lock)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = role, .l_len = 1 };

	/* F_SETLK, not F_OFD_SETLK: F_GETLK then names the holder's pid */
	if (fcntl(fd, F_SETLK, &fl) == 0)
		return 0;
	if (errno != EAGAIN && errno != EACCES) {
		log_error("cannot lock \"%s\":", lock);
		return -1;
	}
	fl = (struct flock){ .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = role, .l_len = 1 };
	if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK && fl.l_pid > 0)
		log_error("ack file \"%s\" is in use by another pipeline (pid %ld holds %s)",
		    path, (long)fl.l_pid, lock);
	else
		log_error("ack file \"%s\" is in use by another pipeline (%s is locked)", path, lock);
	return -1;
}

int
ack_claim(const char *path, enum ack_role role)
{
	char lock[4096];
	struct stat st;
	int fd;

	if (ack_check_dir(path) < 0)
		return -1;
	if (snprintf(lock, sizeof lock, "%s.lock", path) >= (int)sizeof lock) {
		log_error("ack file name \"%s\" is too long", path);
		return -1;
	}
	fd = open(lock, O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0) {
		log_error("cannot open lock file \"%s\":", lock);
		return -1;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		log_error("lock file \"%s\" is not a regular file of this user: refusing it", lock);
		close(fd);
		return -1;
	}
	if (take_lock(fd, role, path, lock) < 0) {
		close(fd);
		return -1;
	}
	/* only now: a pipeline refused above must not touch the count of the one running */
	if (ack_write(path, 0) < 0) {
		log_error("cannot write ack file \"%s\":", path);
		close(fd);
		return -1;
	}
	return fd;
}

int
ack_role_held(int lockfd, enum ack_role role)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = role, .l_len = 1 };

	if (fcntl(lockfd, F_GETLK, &fl) != 0)
		return -1;
	return fl.l_type != F_UNLCK;
}
