/*
 * Opening an output file that may sit in a directory other users can reach
 * (a shared state directory such as /var/tmp/pgcdc), without letting them
 * redirect or read what is written.
 */
#ifndef PGCDC_PRIVFILE_H
#define PGCDC_PRIVFILE_H

/*
 * Open path for appending (O_APPEND), creating it with mode 0600.  Refused:
 * a symbolic link as the last component, and a file in a directory that
 * belongs to neither the user nor root or that group or others may write.
 * /dev/stdout, /dev/stderr, /dev/fd/N and /proc/self/fd/N name a descriptor
 * the caller already has open for writing, as in the shell: a duplicate of
 * it is returned.  Returns the descriptor (close-on-exec), or -1 after
 * logging "cannot open WHAT \"PATH\": ..." or "refusing WHAT \"PATH\": ...".
 */
int open_private_append(const char *path, const char *what);

/*
 * 0 if the directory of path may hold the files of what (the same rule as
 * above: owned by the user or root, written by no one else); -1 after
 * logging "refusing WHAT \"PATH\": directory \"DIR\" ..." otherwise.
 */
int check_private_dir(const char *path, const char *what);

#endif
