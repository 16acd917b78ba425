/*
 * Unit tests of the ack file (strict format, temporaries, directory check,
 * lock) and of the ack window upstream stages keep: mark, acknowledge,
 * overclaim and other foreign counts, wrap-around, the exit wait.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ackfile.h"
#include "ackwin.h"
#include "clock.h"
#include "log.h"
#include "check.h"

static char dir[64], ack[128];

/* One byte through a pipe: the test's processes take turns. */
static void
signal_fd(int fd)
{
	if (write(fd, "x", 1) != 1)
		exit(2);
}

static void
await_fd(int fd)
{
	char c;

	if (read(fd, &c, 1) != 1)
		exit(2);
}

/* Write the ack file as a downstream would, or any bytes at all. */
static void
put_file(const char *text, size_t len)
{
	char tmp[160];
	int fd;

	snprintf(tmp, sizeof tmp, "%s.test", ack);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, text, len) != (ssize_t)len || close(fd) != 0 || rename(tmp, ack) != 0) {
		perror("put_file");
		exit(2);
	}
}

static void
put_count(uint64_t n)
{
	char buf[32];

	put_file(buf, snprintf(buf, sizeof buf, "%" PRIu64 "\n", n));
}

static void
test_parse(void)
{
	static const struct { const char *text; int ok; uint64_t n; } cases[] = {
		{ "0\n", 1, 0 }, { "42\n", 1, 42 }, { "007\n", 1, 7 },
		{ "18446744073709551615\n", 1, UINT64_MAX },
		{ "", 0, 0 }, { "\n", 0, 0 }, { "50\n60", 0, 0 }, { "50\n60\n", 0, 0 },
		{ "50", 0, 0 }, { "abc\n", 0, 0 }, { " 1\n", 0, 0 }, { "1 \n", 0, 0 },
		{ "-1\n", 0, 0 }, { "+1\n", 0, 0 }, { "1\r\n", 0, 0 }, { "1\n\n", 0, 0 },
		{ "18446744073709551616\n", 0, 0 }, { "99999999999999999999\n", 0, 0 },
		{ "000000000000000000001\n", 0, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof *cases; i++) {
		uint64_t n = 12345;
		const char *why = ack_parse(cases[i].text, strlen(cases[i].text), &n);

		CHECK((why == NULL) == cases[i].ok && (!cases[i].ok || n == cases[i].n),
		    "ack_parse(\"%s\"): %s, %" PRIu64, cases[i].text, why ? why : "ok", n);
	}
	CHECK(ack_parse("1\0\n", 3, &(uint64_t){ 0 }) != NULL, "a NUL is not a digit");
}

static void
test_write_read(void)
{
	char tmp[160], other[160];
	struct stat st;
	uint64_t n = 0;
	const char *why;

	CHECK(ack_write(ack, 42) == 0, "ack_write");
	why = ack_read(ack, &n);
	CHECK(why == NULL && n == 42, "ack_read after ack_write: %s %" PRIu64, why ? why : "ok", n);
	CHECK(stat(ack, &st) == 0 && (st.st_mode & 0777) == 0600, "the ack file is mode 0600");

	/* a stale temporary of our pid, even a link to another file, is replaced, not followed */
	snprintf(tmp, sizeof tmp, "%s.%ld.tmp", ack, (long)getpid());
	snprintf(other, sizeof other, "%s/other", dir);
	put_file("x", 1);
	rename(ack, other);
	CHECK(symlink(other, tmp) == 0, "symlink");
	CHECK(ack_write(ack, 7) == 0 && ack_read(ack, &n) == NULL && n == 7, "a stale temporary");
	CHECK(stat(other, &st) == 0 && st.st_size == 1, "the link's target is untouched");
	CHECK(access(tmp, F_OK) != 0, "no temporary is left");

	/* reading goes through no link either */
	unlink(ack);
	CHECK(symlink(other, ack) == 0, "symlink");
	why = ack_read(ack, &n);
	CHECK(why && strcmp(why, "it is a symbolic link") == 0, "a link is refused: %s", why ? why : "ok");
	unlink(ack);
	why = ack_read(ack, &n);
	CHECK(why && strcmp(why, "it does not exist") == 0, "a missing file: %s", why ? why : "ok");
	unlink(other);
}

static void
test_dir(void)
{
	static const struct { mode_t mode; int ok; } cases[] = {
		{ 0700, 1 }, { 0755, 1 }, { 0775, 0 }, { 0757, 0 }, { 0777, 0 }, { 01777, 0 },
	};
	size_t i;

	for (i = 0; i < sizeof cases / sizeof *cases; i++) {
		chmod(dir, cases[i].mode);
		CHECK((ack_check_dir(ack) == 0) == cases[i].ok, "a directory of mode %o", cases[i].mode);
	}
	chmod(dir, 0700);
}

/* The payload of the test's marks, and where popped ones are recorded. */
struct rec {
	uint64_t v[64];
	int n;
};

static void
pop(void *ctx, void *payload)
{
	struct rec *r = ctx;

	if (r->n < 64)
		r->v[r->n++] = *(uint64_t *)payload;
}

static void
mark(struct ackwin *w, uint64_t line, uint64_t v)
{
	*(uint64_t *)ackwin_push(w, line) = v;
}

static void
test_window(void)
{
	struct ackwin *w = ackwin_open(ack, sizeof(uint64_t), 1000);
	struct rec r = { { 0 }, 0 };
	uint64_t n = 1, line = 0;

	CHECK(w != NULL, "ackwin_open");
	CHECK(ack_read(ack, &n) == NULL && n == 0, "opening resets the file to 0");
	CHECK(ackwin_fd(w) >= 0, "a descriptor to wait on");
	mark(w, 1, 101);
	mark(w, 2, 102);
	mark(w, 4, 104);
	CHECK(*(uint64_t *)ackwin_newer(w, 0, &line) == 104 && line == 4, "the newest mark");
	CHECK(ackwin_newer(w, 3, &line) == NULL, "no mark past the oldest");
	CHECK(ackwin_update(w, 5, pop, &r) == 0 && r.n == 0 && ackwin_acked(w) == 0, "nothing acknowledged");
	put_count(3);
	CHECK(ackwin_update(w, 5, pop, &r) == 0 && ackwin_acked(w) == 3, "3 acknowledged");
	CHECK(r.n == 2 && r.v[0] == 101 && r.v[1] == 102 && ackwin_len(w) == 1, "marks 1 and 2 popped");
	put_count(3);
	CHECK(ackwin_update(w, 5, pop, &r) == 0 && r.n == 2, "the same count again");

	/* overclaim: never advances anything, and nothing does afterwards */
	put_count(6);
	CHECK(ackwin_update(w, 5, pop, &r) < 0 && ackwin_acked(w) == 3 && r.n == 2, "6 of 5 refused");
	put_count(5);
	CHECK(ackwin_update(w, 5, pop, &r) < 0 && r.n == 2, "a refusal is final");
	ackwin_free(w, NULL, NULL);
}

/* Each foreign count is refused without popping: name, file content, lines written. */
static void
test_foreign(const char *name, const char *text, uint64_t written)
{
	struct ackwin *w = ackwin_open(ack, sizeof(uint64_t), 1000);
	struct rec r = { { 0 }, 0 };

	mark(w, 1, 1);
	mark(w, 3, 3);
	put_count(1);
	CHECK(ackwin_update(w, written, pop, &r) == 0 && r.n == 1, "%s: 1 acknowledged", name);
	if (text)
		put_file(text, strlen(text));
	else
		unlink(ack);
	CHECK(ackwin_update(w, written, pop, &r) < 0 && r.n == 1 && ackwin_acked(w) == 1,
	    "%s: refused", name);
	ackwin_free(w, NULL, NULL);
}

static void
test_wrap(void)
{
	struct ackwin *w = ackwin_open(NULL, sizeof(uint64_t), 100);
	struct rec r;
	uint64_t line = 0, i, k;
	int ok = 1;

	/* without a file every line written is durable; the ring turns many times */
	for (i = 0; i < 1000; i += 70) {
		r.n = 0;
		for (k = 1; k <= 70; k++)
			mark(w, line + k, 1000 * i + k);
		CHECK(ackwin_len(w) == 70, "70 marks in the ring");
		/* written a little ahead of the marks: the marks up to it pop */
		if (ackwin_update(w, line + 60, pop, &r) < 0 || r.n != 60 || r.v[0] != 1000 * i + 1 ||
		    r.v[59] != 1000 * i + 60)
			ok = 0;
		r.n = 0;
		if (ackwin_update(w, line + 70, pop, &r) < 0 || r.n != 10 || r.v[9] != 1000 * i + 70)
			ok = 0;
		line += 70;
	}
	CHECK(ok && ackwin_len(w) == 0, "marks come out in order across the ring's end");
	ackwin_free(w, NULL, NULL);
}

/* More marks than max is fatal: the window is a bound. */
static void
test_overflow(void)
{
	pid_t pid = fork();
	int st = 0, i;

	if (pid == 0) {
		struct ackwin *w = ackwin_open(NULL, sizeof(uint64_t), 10);

		if (freopen("/dev/null", "w", stderr) == NULL)
			_exit(2);
		for (i = 0; i < 11; i++)
			mark(w, i + 1, i);
		_exit(0);
	}
	waitpid(pid, &st, 0);
	CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 1, "11 marks in a window of 10 exit 1");
}

static void
test_wait(void)
{
	struct ackwin *w = ackwin_open(ack, sizeof(uint64_t), 1000);
	struct rec r = { { 0 }, 0 };
	double start;
	pid_t pid;

	mark(w, 2, 2);
	/* nobody acknowledges: the timeout */
	start = mono_ms();
	CHECK(ackwin_wait(w, 2, 300, pop, &r, NULL) == 0 && ackwin_acked(w) == 0, "a wait times out");
	CHECK(mono_ms() - start >= 290 && mono_ms() - start < 2000, "after its timeout");

	/* a downstream acknowledging a moment later */
	if ((pid = fork()) == 0) {
		usleep(200000);
		put_count(2);
		_exit(0);
	}
	start = mono_ms();
	CHECK(ackwin_wait(w, 2, 10000, pop, &r, NULL) == 0 && ackwin_acked(w) == 2 && r.n == 1,
	    "the wait ends with the acknowledgement");
	CHECK(mono_ms() - start < 5000, "at once");
	waitpid(pid, NULL, 0);
	ackwin_free(w, NULL, NULL);
}

/* A downstream that holds its lock and exits: the wait ends without its timeout. */
static void
test_wait_gone(void)
{
	struct ackwin *w = ackwin_open(ack, sizeof(uint64_t), 1000);
	struct rec r = { { 0 }, 0 };
	int go[2], ready[2];
	double start;
	pid_t pid;

	mark(w, 3, 3);
	mark(w, 5, 5);
	if (pipe(go) != 0 || pipe(ready) != 0)
		exit(2);
	if ((pid = fork()) == 0) {
		if (ack_claim(ack, ACK_DOWNSTREAM) < 0)
			_exit(1);
		signal_fd(ready[1]);
		await_fd(go[0]);
		put_count(3);
		_exit(0);
	}
	await_fd(ready[0]);
	CHECK(ackwin_update(w, 5, pop, &r) == 0, "the downstream is seen");
	signal_fd(go[1]);
	start = mono_ms();
	CHECK(ackwin_wait(w, 5, 20000, pop, &r, NULL) == 0 && ackwin_acked(w) == 3 && r.n == 1,
	    "its last count is read");
	CHECK(mono_ms() - start < 5000, "without waiting for the timeout");
	waitpid(pid, NULL, 0);
	ackwin_free(w, NULL, NULL);
}

/* One stage per role: a second upstream or downstream on the file is refused. */
static void
test_lock(void)
{
	int go[2], ready[2], fd;
	pid_t pid;

	if (pipe(go) != 0 || pipe(ready) != 0)
		exit(2);
	if ((pid = fork()) == 0) {
		if (ack_claim(ack, ACK_UPSTREAM) < 0 || ack_claim(ack, ACK_DOWNSTREAM) < 0)
			_exit(1);
		signal_fd(ready[1]);
		await_fd(go[0]);
		_exit(0);
	}
	await_fd(ready[0]);
	CHECK(ack_claim(ack, ACK_UPSTREAM) < 0, "a second upstream is refused");
	CHECK(ack_claim(ack, ACK_DOWNSTREAM) < 0, "a second downstream is refused");
	signal_fd(go[1]);
	waitpid(pid, NULL, 0);
	fd = ack_claim(ack, ACK_UPSTREAM);
	CHECK(fd >= 0, "the lock is free once its holder exits");
	close(fd);
}

int
main(void)
{
	char cmd[200];

	log_init("ackwin");
	/* forked children must not write out a copy of pending output */
	setvbuf(stdout, NULL, _IONBF, 0);
	strcpy(dir, "/tmp/ackwin.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 2;
	snprintf(ack, sizeof ack, "%s/ack", dir);
	test_parse();
	test_write_read();
	test_dir();
	test_window();
	test_foreign("overclaim", "6\n", 5);
	test_foreign("a count going down", "0\n", 5);
	test_foreign("two lines", "50\n60", 5);
	test_foreign("not digits", "abc", 5);
	test_foreign("empty", "", 5);
	test_foreign("too long", "0000000000000000000000000001\n", 5);
	test_foreign("overflow", "18446744073709551616\n", 5);
	test_foreign("vanished", NULL, 5);
	test_wrap();
	test_overflow();
	test_wait();
	test_wait_gone();
	test_lock();
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		return 2;
	printf("ackwin: %d passed, %d failed\n", passed, failed);
	return failed > 0;
}
