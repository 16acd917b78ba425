/*
 * The ack file: one decimal number N meaning "the first N lines of my stdin
 * are durable", replaced atomically (temporary file + rename).
 */
#ifndef PGCDC_ACKFILE_H
#define PGCDC_ACKFILE_H

#include <stdint.h>

/* Replace the file's content with n; 0 on success, -1 with errno set. */
int ack_write(const char *path, uint64_t n);

/* Read the count into *n; 0 on success, -1 if missing or not a number. */
int ack_read(const char *path, uint64_t *n);

#endif
