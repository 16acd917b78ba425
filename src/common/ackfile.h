/*
 * The ack file: "N\n", one line of decimal digits meaning "the first N lines
 * of my stdin are durable", replaced atomically (temporary file + rename) by
 * the downstream stage and read by the upstream one.  Its rules live here:
 * the strict format, the directory it may live in, and the lock that keeps
 * one pair of stages per file.
 */
#ifndef PGCDC_ACKFILE_H
#define PGCDC_ACKFILE_H

#include <stddef.h>
#include <stdint.h>

/* Replace the file's content with n; 0 on success, -1 with errno set. */
int ack_write(const char *path, uint64_t n);

/*
 * Parse the content of an ack file: NULL and *n set when it is exactly one
 * line of 1 to 20 decimal digits within 64 bits, else why it is refused.
 */
const char *ack_parse(const char *buf, size_t len, uint64_t *n);

/* Read the count into *n: NULL on success, else why not (a missing file included). */
const char *ack_read(const char *path, uint64_t *n);

/* The two ends of an ack file, each holding its own byte of FILE.lock. */
enum ack_role { ACK_UPSTREAM = 0, ACK_DOWNSTREAM = 1 };

/*
 * Refuse a directory for path that another user than ours or root owns or
 * that the group or others may write in (sticky or not): 0, or -1 after an
 * error message (check_private_dir, the rule of dead-letter files too).
 */
int ack_check_dir(const char *path);

/*
 * What a stage does first with --ack=path: check the directory, take the
 * role's lock on path.lock (a second pipeline on the file refuses to start),
 * then reset the file to 0.  Returns the lock's descriptor, to keep open for
 * the life of the process, or -1 after an error message.
 */
int ack_claim(const char *path, enum ack_role role);

/* Does a process hold the role's lock on the file of lockfd: 1, 0, or -1 on error. */
int ack_role_held(int lockfd, enum ack_role role);

#endif
