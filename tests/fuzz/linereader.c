/*
 * libFuzzer: the line reader against a model.  The input is the line length
 * limit (first byte, 1..64) then chunks (a length byte, that many bytes),
 * each written to a pipe and read with lr_fill and lr_next as the tools do.
 * The model splits the whole input at newlines: each line as it was, or its
 * first max bytes flagged truncated; a last line without a newline is
 * handed out too, flagged unterminated when it was not cut.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linereader.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct model {
	const char *all;	/* every byte written, in order */
	size_t len, at;		/* at: where the next expected line starts */
	size_t max;
};

static void
fail(const char *what, size_t at)
{
	fprintf(stderr, "fuzz-linereader: %s (line at byte %zu)\n", what, at);
	abort();
}

/* Check one line the reader handed out against the next the model expects. */
static void
expect(struct model *m, struct linereader *lr, const char *line, size_t len, int cut)
{
	const char *nl;
	size_t want, end;
	int last;

	if (m->at >= m->len)
		fail("a line past the end of input", m->at);
	nl = memchr(m->all + m->at, '\n', m->len - m->at);
	end = nl ? (size_t)(nl - m->all) : m->len;
	want = end - m->at;
	last = nl == NULL;
	if (cut != (want > m->max))
		fail(cut ? "cut, but not too long" : "too long, but not cut", m->at);
	if (want > m->max)
		want = m->max;
	if (len != want || memcmp(line, m->all + m->at, len) != 0)
		fail("not the line written", m->at);
	if (lr_unterminated(lr) != (last && !cut))
		fail("wrong unterminated flag", m->at);
	m->at = nl ? end + 1 : m->len;
}

/* Hand out every buffered line, then read; until the pipe is empty (or at its end). */
static void
drain(struct model *m, struct linereader *lr)
{
	const char *line;
	size_t len;
	int cut;
	long n;

	for (;;) {
		while (lr_next(lr, &line, &len, &cut))
			expect(m, lr, line, len, cut);
		if ((n = lr_fill(lr)) == 0 && lr_done(lr))
			return;
		if (n < 0 && errno == EAGAIN)
			return;
		if (n < 0)
			fail("read failed", m->at);
	}
}

/* The bytes of the chunks that follow the first byte, joined. */
static char *
join(const uint8_t *data, size_t size, size_t *len)
{
	char *all = malloc(size);
	size_t i = 1, n;

	*len = 0;
	while (i < size) {
		n = data[i++];
		if (n > size - i)
			n = size - i;
		memcpy(all + *len, data + i, n);
		*len += n;
		i += n;
	}
	return all;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model m = { NULL, 0, 0, 0 };
	struct linereader *lr;
	int fds[2];
	size_t i = 1, n;

	if (size < 1 || pipe(fds) < 0)
		return 0;
	m.all = join(data, size, &m.len);
	m.max = data[0] % 64 + 1;
	fcntl(fds[0], F_SETFL, O_NONBLOCK);
	if ((lr = lr_open(fds[0], m.max)) == NULL)
		abort();
	while (i < size) {
		n = data[i++];
		if (n > size - i)
			n = size - i;
		if (write(fds[1], data + i, n) != (ssize_t)n)
			abort();
		i += n;
		drain(&m, lr);
	}
	close(fds[1]);
	drain(&m, lr);
	if (!lr_done(lr) || m.at != m.len)
		fail("input left unread at its end", m.at);
	lr_close(lr);
	close(fds[0]);
	free((char *)m.all);
	return 0;
}
