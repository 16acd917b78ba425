/*
 * Unit tests of the line reader every tool reads its input with: lines whole
 * however the bytes fall into reads, over-long lines cut to the limit and
 * flagged, a last line without a newline handed out and marked unterminated.
 */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "linereader.h"
#include "check.h"


/* A growing string the lines handed out are rendered into. */
struct text {
	char *s;
	size_t len;
};

static void
append(struct text *t, const char *s, size_t len)
{
	if ((t->s = realloc(t->s, t->len + len + 1)) == NULL)
		exit(2);
	memcpy(t->s + t->len, s, len);
	t->len += len;
	t->s[t->len] = '\0';
}

/* Each line as [bytes], then T when it was cut and U when it was unterminated. */
static void
drain(struct linereader *lr, struct text *t)
{
	const char *line;
	size_t len;
	int cut;

	while (lr_next(lr, &line, &len, &cut)) {
		append(t, "[", 1);
		append(t, line, len);
		append(t, "]", 1);
		if (cut)
			append(t, "T", 1);
		if (lr_unterminated(lr))
			append(t, "U", 1);
	}
}

static void
write_all(int fd, const char *s, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, s, len)) <= 0)
			exit(2);
		s += n;
		len -= n;
	}
}

/*
 * Feed chunks through a pipe, one read() each: the writer sends the next
 * chunk only after the reader's lr_fill() returned, so the lines cross the
 * read boundaries exactly where the chunks end.  Returns the rendered lines.
 */
static char *
read_chunks(size_t max, const char *const *chunks, int *done)
{
	int data[2], go[2], i;
	struct text t = { NULL, 0 };
	struct linereader *lr;
	long n;
	pid_t pid;
	char c = 'x';

	if (pipe(data) != 0 || pipe(go) != 0 || (pid = fork()) < 0)
		exit(2);
	if (pid == 0) {
		close(data[0]);
		close(go[1]);
		for (i = 0; chunks[i]; i++) {
			write_all(data[1], chunks[i], strlen(chunks[i]));
			if (read(go[0], &c, 1) != 1)
				_exit(2);
		}
		_exit(0);
	}
	close(data[1]);
	close(go[0]);
	if ((lr = lr_open(data[0], max)) == NULL)
		exit(2);
	append(&t, "", 0);
	while ((n = lr_fill(lr)) > 0) {
		drain(lr, &t);
		/* the writer may be gone after its last chunk: SIGPIPE is ignored */
		(void)!write(go[1], &c, 1);
	}
	CHECK(n == 0, "lr_fill ends with 0 at end of input, not %ld", n);
	drain(lr, &t);
	*done = lr_done(lr);
	lr_close(lr);
	close(data[0]);
	close(go[1]);
	waitpid(pid, NULL, 0);
	return t.s;
}

/* chunks (NULL-terminated) read with limit max render as want. */
static void
expect(size_t max, const char *want, ...)
{
	const char *chunks[32];
	va_list ap;
	int n = 0, done = 0;
	char *got;

	va_start(ap, want);
	while ((chunks[n] = va_arg(ap, const char *)) != NULL && n < 31)
		n++;
	va_end(ap);
	chunks[n] = NULL;
	got = read_chunks(max, chunks, &done);
	CHECK(strcmp(got, want) == 0, "max %zu: got %s, want %s", max, got, want);
	CHECK(done, "lr_done once %s was read", want);
	free(got);
}

static void
test_whole_lines(void)
{
	expect(100, "", NULL);
	expect(100, "[a][bb][]", "a\nbb\n\n", NULL);
	expect(100, "[a][bb]", "a\n", "bb\n", NULL);
	/* a line split over many reads, a newline alone, several lines in one read */
	expect(100, "[hello][world][x][y][z]", "he", "l", "lo", "\n", "wor", "ld\nx\ny", "\nz\n", NULL);
	/* one byte per read */
	expect(100, "[ab][c]", "a", "b", "\n", "c", "\n", NULL);
}

static void
test_unterminated(void)
{
	expect(100, "[a][bc]U", "a\nbc", NULL);
	expect(100, "[a][bc]U", "a\n", "b", "c", NULL);
	expect(100, "[a]", "a\n", NULL);
	/* a lone last byte, not an empty line */
	expect(100, "[x]U", "x", NULL);
}

static void
test_cut(void)
{
	/* exactly max bytes is whole; one more is cut and the rest dropped */
	expect(5, "[abcde][abcde]T[xy]", "abcde\nabcdef\nxy\n", NULL);
	expect(5, "[abcde]T[xy]", "abc", "defghij", "klm\n", "xy\n", NULL);
	/* the rest of a cut line spans reads with no newline in them */
	expect(5, "[abcde]T[z]", "abcdefg", "hijklmn", "opq", "rst\nz\n", NULL);
	/* cut and unterminated: the over-long last line is cut, the reader done */
	expect(5, "[a][abcde]T", "a\nabcdefghij", NULL);
	expect(3, "[abc]T[abc]T[abc]", "abcd\nabcde\nabc\n", NULL);
}

/* Lines longer than the reader's first buffer, written in one go. */
static void
test_long_lines(void)
{
	size_t max = 200000, big = 300000, i;
	char *in = malloc(big * 2 + 16), *want = malloc(max + big + 64);
	const char *chunks[2] = { in, NULL };
	int done = 0;
	char *got;

	if (in == NULL || want == NULL)
		exit(2);
	/* a line of max bytes, then one of big bytes, then a short one */
	for (i = 0; i < max; i++)
		in[i] = 'a' + i % 26;
	in[max] = '\n';
	for (i = 0; i < big; i++)
		in[max + 1 + i] = 'A' + i % 26;
	strcpy(in + max + 1 + big, "\nend\n");
	want[0] = '[';
	memcpy(want + 1, in, max);
	strcpy(want + 1 + max, "][");
	memcpy(want + 3 + max, in + max + 1, max);
	strcpy(want + 3 + 2 * max, "]T[end]");
	got = read_chunks(max, chunks, &done);
	CHECK(strcmp(got, want) == 0, "long lines: got %zu bytes, want %zu", strlen(got), strlen(want));
	CHECK(done, "lr_done after long lines");
	free(got);
	free(in);
	free(want);
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	/* forked children must not write out a copy of pending output */
	setvbuf(stdout, NULL, _IONBF, 0);
	test_whole_lines();
	test_unterminated();
	test_cut();
	test_long_lines();
	printf("linereader: %d passed, %d failed\n", passed, failed);
	return failed > 0;
}
