#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "privfile.h"

/* The descriptor a name such as /dev/stderr or /dev/fd/3 stands for, or -1. */
static int
named_fd(const char *path)
{
	static const char *const dirs[] = { "/dev/fd/", "/proc/self/fd/" };
	const char *n = NULL;
	char *end;
	long fd;
	size_t i;

	if (strcmp(path, "/dev/stdout") == 0)
		return STDOUT_FILENO;
	if (strcmp(path, "/dev/stderr") == 0)
		return STDERR_FILENO;
	for (i = 0; i < sizeof dirs / sizeof *dirs; i++)
		if (strncmp(path, dirs[i], strlen(dirs[i])) == 0)
			n = path + strlen(dirs[i]);
	if (n == NULL || *n < '0' || *n > '9')
		return -1;
	errno = 0;
	fd = strtol(n, &end, 10);
	return *end != '\0' || errno != 0 || fd > INT_MAX ? -1 : (int)fd;
}

/*
 * A duplicate of a descriptor the caller holds open for writing.  Reopening
 * /proc/self/fd/N instead would follow a link, fail on a socket (stderr under
 * systemd) and, on a regular file, write at an offset of its own over what
 * the process logs through the original descriptor.
 */
static int
dup_writable(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0)
		return -1;
	if ((flags & O_ACCMODE) == O_RDONLY) {
		errno = EBADF;
		return -1;
	}
	return fcntl(fd, F_DUPFD_CLOEXEC, 3);
}

/*
 * Why a directory whose status is st may not hold our files, or NULL when
 * only the user or root can add, replace or link entries in it.
 */
static const char *
untrusted(const struct stat *st)
{
	if (!S_ISDIR(st->st_mode))
		return "is not a directory";
	if (st->st_uid != geteuid() && st->st_uid != 0)
		return "is owned by another user";
	if (st->st_mode & (S_IWGRP | S_IWOTH))
		return "is writable by group or others";
	return NULL;
}

/* The directory part of path, allocated. */
static char *
dir_of(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;

	if (slash == NULL)
		return xstrdup(".");
	if (slash == path)
		return xstrdup("/");
	if ((dir = strndup(path, (size_t)(slash - path))) == NULL)
		die("out of memory");
	return dir;
}

int
check_private_dir(const char *path, const char *what)
{
	char *dir = dir_of(path);
	struct stat st;
	const char *why;
	int rc = -1;

	if (stat(dir, &st) < 0)
		log_error("cannot use the directory of %s \"%s\":", what, path);
	else if ((why = untrusted(&st)) != NULL)
		log_error("refusing %s \"%s\": directory \"%s\" %s", what, path, dir, why);
	else
		rc = 0;
	free(dir);
	return rc;
}

/* Open base in the directory dir (checked first); -1 after logging. */
static int
open_in(const char *dir, const char *base, const char *path, const char *what)
{
	struct stat st;
	int dirfd, fd;
	const char *why;

	if ((dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC)) < 0) {
		log_error("cannot open %s \"%s\":", what, path);
		return -1;
	}
	if ((why = fstat(dirfd, &st) < 0 ? strerror(errno) : untrusted(&st)) != NULL) {
		log_error("refusing %s \"%s\": directory \"%s\" %s", what, path, dir, why);
		close(dirfd);
		return -1;
	}
	fd = openat(dirfd, base, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 && errno == ELOOP)
		log_error("refusing %s \"%s\": it is a symbolic link", what, path);
	else if (fd < 0)
		log_error("cannot open %s \"%s\":", what, path);
	close(dirfd);
	return fd;
}

int
open_private_append(const char *path, const char *what)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int fd = named_fd(path);

	if (fd >= 0) {
		if ((fd = dup_writable(fd)) < 0)
			log_error("cannot open %s \"%s\":", what, path);
		return fd;
	}
	if (slash != NULL && slash[1] == '\0') {
		errno = EISDIR;
		log_error("cannot open %s \"%s\":", what, path);
		return -1;
	}
	dir = dir_of(path);
	fd = open_in(dir, slash ? slash + 1 : path, path, what);
	free(dir);
	return fd;
}
