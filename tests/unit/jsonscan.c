/* Unit tests of the JSON scanner that kafka-pub and kafka-sub validate lines with. */
#include <stdio.h>
#include <string.h>

#include "jsonscan.h"

static int failed, passed;

static void
check(const char *text, int valid)
{
	const char *why = json_scan(text, strlen(text), NULL, NULL, NULL);

	if ((why == NULL) == valid) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL: %s should be %s (%s)\n", text, valid ? "valid" : "invalid", why ? why : "valid");
}

static void
check_key(const char *text, const char *field, const char *want)
{
	const char *val;
	size_t vlen;
	char buf[256];
	long n = -1;

	if (json_scan(text, strlen(text), field, &val, &vlen) == NULL && val)
		n = json_key_text(val, vlen, buf, sizeof buf);
	if (want == NULL ? n < 0 : (n >= 0 && (size_t)n == strlen(want) && memcmp(buf, want, n) == 0)) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL: key %s of %s: got %.*s, want %s\n", field, text, n < 0 ? 4 : (int)n,
	    n < 0 ? "none" : buf, want ? want : "none");
}

/* A decoded key fits its buffer exactly, or is refused: never cut. */
static void
check_key_cap(void)
{
	static const char esc[] = "\"ab\\u00e9\\n\"";	/* decodes to 5 bytes */
	char buf[8];
	long n5 = json_key_text(esc, strlen(esc), buf, 5);
	int same = n5 == 5 && memcmp(buf, "ab\xc3\xa9\n", 5) == 0;
	long n4 = json_key_text(esc, strlen(esc), buf, 4);
	long p3 = json_key_text("\"abc\"", 5, buf, 3), p2 = json_key_text("\"abc\"", 5, buf, 2);

	if (same && n4 == -1 && p3 == 3 && p2 == -1) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL: key capacity: %ld %ld %ld %ld\n", n5, n4, p3, p2);
}

/* json_scan_line: the reason for text (NULL: valid), as kafka-sub dead-letters it. */
static void
check_line(const char *text, const char *want)
{
	const char *why = json_scan_line(text, strlen(text));

	if (want == NULL ? why == NULL : (why != NULL && strcmp(why, want) == 0)) {
		passed++;
		return;
	}
	failed++;
	printf("FAIL: line %s: got %s, want %s\n", text, why ? why : "valid", want ? want : "valid");
}

int
main(void)
{
	static const char *valid[] = {
		"{}", "[]", "0", "-0", "1.5e10", "-1E-2", "\"\"", "true", "false", "null",
		" { \"a\" : [ 1 , 2 , { } ] } ", "{\"a\":\"\\u00e9\\n\\\"\\\\\\/\"}",
		"\"\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80\"", "123456789012345678901234567890.0123456789",
		"[[[[[[[[[[]]]]]]]]]]", "{\"a\":1,\"a\":2}",
	};
	static const char *invalid[] = {
		"", " ", "{", "}", "[1,]", "{\"a\":1,}", "{a:1}", "'a'", "01", "1.", ".5", "1e",
		"+1", "tru", "nul", "\"unterminated", "\"bad \\x escape\"", "\"\\u12g4\"",
		"\"raw\ttab\"", "{} {}", "{}x", "[1 2]", "{\"a\" 1}", "NaN", "Infinity",
		"\"\xc3\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"", "\"\xf5\x80\x80\x80\"", "\xff",
	};
	char deep[2000];
	size_t i;

	for (i = 0; i < sizeof valid / sizeof *valid; i++)
		check(valid[i], 1);
	for (i = 0; i < sizeof invalid / sizeof *invalid; i++)
		check(invalid[i], 0);
	/* a bad byte at every offset of a long string, for the paths that take
	 * 8 or 16 bytes at a time and the byte loop after them */
	for (i = 1; i < 70; i++) {
		char str[80];
		const char bad[] = { '\x01', '\x1f', '\xff', '\x80', '"' };
		size_t b;

		for (b = 0; b < sizeof bad; b++) {
			memset(str, 'x', sizeof str);
			str[0] = '"';
			str[71] = '"';
			str[72] = '\0';
			check(str, 1);
			str[i] = bad[b];
			check(str, 0);
		}
		/* and bytes that are no plain ASCII but valid: an escape, UTF-8, DEL */
		if (i < 69) {
			memcpy(str + i, "\\n", 2);
			check(str, 1);
			memcpy(str + i, "\xc3\xa9", 2);
			check(str, 1);
			str[i] = '\x7f';
			str[i + 1] = 'x';
			check(str, 1);
		}
	}
	memset(deep, '[', 1000);
	memset(deep + 1000, ']', 999);
	deep[1999] = '\0';
	check(deep, 0);		/* nested deeper than the limit, and unbalanced */

	check_key("{\"key\":{\"id\": \"a b\" , \"n\" : 1}}", "key", "{\"id\":\"a b\",\"n\":1}");
	check_key("{\"key\":\"plain\"}", "key", "plain");
	check_key("{\"key\":\"esc\\u00e9\\\"\"}", "key", "esc\xc3\xa9\"");
	check_key("{\"key\":42}", "key", "42");
	check_key("{\"other\":1,\"nested\":{\"key\":1}}", "key", NULL);
	check_key("{\"key\":1,\"key\":2}", "key", "2");
	check_key("[{\"key\":1}]", "key", NULL);
	check_key("{\"a\\\"b\":\"x\"}", "a\"b", "x");
	check_key("{\"k\\u00e9\\ud83d\\ude00\\\\\":1}", "k\xc3\xa9\xf0\x9f\x98\x80\\", "1");
	/* a key's text as jansson decoded it: no U+0000, no half surrogate pair */
	check_key("{\"key\":\"\\t\\b\\f\\/\\ud83d\\ude00\\u0041\\u07ff\\uffff\"}", "key",
	    "\t\b\f/\xf0\x9f\x98\x80" "A\xdf\xbf\xef\xbf\xbf");
	check_key("{\"key\":\"a\\u0000b\"}", "key", NULL);
	check_key("{\"key\":\"\\ud800\"}", "key", NULL);
	check_key("{\"key\":\"\\udc00\\ud800\"}", "key", NULL);
	check_key("{\"key\":\"\\ud800\\u0041\"}", "key", NULL);
	check_key("{\"key\":\"\\ud800x\"}", "key", NULL);
	/* a member name's escapes are undone for that name only */
	check_key("{\"a\\n\":1,\"key\":2}", "key", "2");
	check_key("{\"x\":\"a\\nb\",\"key\":3}", "key", "3");
	check_key("{\"ke\\u0079\":4,\"x\":\"\\t\"}", "key", "4");
	check_key("{\"ke\":1,\"keyy\":2,\"k\":3}", "key", NULL);
	check_key("{\"\":1,\"key\" \t\r\n : \n 5 }", "key", "5");
	check_key_cap();

	check_line("{\"a\":\"b\\nc\"}", NULL);
	check_line(" \t\r{ \"a\" : [ 1 ,\t2 ] }\r ", NULL);
	check_line("{\"a\":\n1}", "value holds a newline");
	check_line("\n{}", "value holds a newline");
	check_line("{}\n", "value holds a newline");
	check_line("{\"a\":\n", "value holds a newline");	/* invalid too: the newline is named */
	check_line("\"a\nb\"", "value holds a newline");
	check_line("{\"a\":}", "not JSON: unexpected character");
	check_line("{} x", "not JSON: text after the value");

	printf("jsonscan: %d passed, %d failed\n", passed, failed);
	return failed != 0;
}
