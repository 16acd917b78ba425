#include <string.h>

#include "jsonout.h"

void
json_put_string(FILE *f, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;

	putc('"', f);
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		case '\t': fputs("\\t", f); break;
		default:
			if (c < 0x20) {
				fputs("\\u00", f);
				putc(hex[c >> 4], f);
				putc(hex[c & 15], f);
			} else {
				putc(c, f);
			}
		}
	}
	putc('"', f);
}

void
json_put_compact(FILE *f, const char *s, size_t len)
{
	int in_string = 0, escaped = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		char c = s[i];

		if (in_string) {
			if (escaped)
				escaped = 0;
			else if (c == '\\')
				escaped = 1;
			else if (c == '"')
				in_string = 0;
		} else if (c == '"') {
			in_string = 1;
		} else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
			continue;
		}
		putc(c, f);
	}
}

void
json_put_oneline(FILE *f, const char *s, size_t len)
{
	if (memchr(s, '\n', len) || memchr(s, '\r', len))
		json_put_compact(f, s, len);
	else
		fwrite(s, 1, len, f);
}
