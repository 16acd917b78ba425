/*
 * Unit tests of the walk over valid JSON: each member's name and value, or
 * each element, as the text has them, whatever the strings hold (escaped
 * quotes and backslashes, brackets) and however deep the values nest.
 */
#include <stdio.h>
#include <string.h>

#include "jsonwalk.h"
#include "check.h"

/* The walk of text rendered as name=value|... (elements: value|...). */
static void
walk(const char *text, const char *want)
{
	struct jiter it;
	const char *name, *val;
	size_t nlen, vlen;
	char got[512];
	size_t n = 0;

	got[0] = '\0';
	jw_open(&it, text, strlen(text));
	while (jw_next(&it, &name, &nlen, &val, &vlen) && n < sizeof got - 1)
		n += (size_t)snprintf(got + n, sizeof got - n, "%.*s%s%.*s|",
		    (int)nlen, name ? name : "", name ? "=" : "", (int)vlen, val);
	CHECK(strcmp(got, want) == 0, "walk of %s: got %s, want %s", text, got, want);
}

int
main(void)
{
	walk("{}", "");
	walk("[]", "");
	walk(" { \"a\" : 1 , \"b\":\"x\" } ", "\"a\"=1|\"b\"=\"x\"|");
	walk("{\"a\":null,\"b\":true,\"c\":-1.5e3}", "\"a\"=null|\"b\"=true|\"c\"=-1.5e3|");
	/* strings ending in escaped quotes and backslashes, holding brackets and commas */
	walk("{\"q\\\"\":\"x\\\\\",\"r\":\"}],{\\\"\"}", "\"q\\\"\"=\"x\\\\\"|\"r\"=\"}],{\\\"\"|");
	/* nested values are one value, whatever they hold */
	walk("{\"o\":{\"a\":[1,{\"b\":\"]\"}]},\"n\":2}", "\"o\"={\"a\":[1,{\"b\":\"]\"}]}|\"n\"=2|");
	walk("[\"a\", [1, 2], {\"k\": \"v\"}, 3]", "\"a\"|[1, 2]|{\"k\": \"v\"}|3|");
	/* long strings: past the short look before memchr */
	walk("{\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\":\"bbbbbbbbbbbbbbbbbbbbbbbbbbbb\\\"bbbb\"}",
	    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"=\"bbbbbbbbbbbbbbbbbbbbbbbbbbbb\\\"bbbb\"|");
	/* not a container: nothing to walk */
	walk("\"s\"", "");
	walk("12", "");
	walk("", "");
	printf("jsonwalk: %d passed, %d failed\n", passed, failed);
	return failed > 0;
}
