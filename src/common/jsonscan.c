#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "jsonout.h"
#include "jsonscan.h"

#define MAX_DEPTH 512

struct scan {
	const char *p, *end;
	const char *err;
	int depth;
	/* top-level members to locate */
	const char *const *fields;
	int nfields;
	const char **vals;
	size_t *vlens;
	int members;		/* of the top-level object */
	int escaped;		/* the last string scanned holds a backslash */
	int newline;		/* whitespace between tokens held a '\n' */
};

/* JSON's whitespace as a set of bytes up to ' ': one test per byte. */
#define WS_SET	(1ULL << ' ' | 1ULL << '\t' | 1ULL << '\n' | 1ULL << '\r')

static inline void
skip_ws(struct scan *s)
{
	const char *p = s->p, *end = s->end;
	int newline = 0;

	while (p < end && (unsigned char)*p <= ' ' && (WS_SET >> (unsigned char)*p & 1))
		newline |= *p++ == '\n';
	s->newline |= newline;
	s->p = p;
}

static int
fail(struct scan *s, const char *why)
{
	if (s->err == NULL)
		s->err = why;
	return -1;
}

/* Length of the UTF-8 sequence at p (1..4), or 0 if it is not valid. */
static size_t
utf8_seq(const unsigned char *p, const unsigned char *end)
{
	size_t n, i;
	unsigned c = p[0];
	unsigned long cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2, cp = c & 0x1f;
	else if (c >= 0xe0 && c <= 0xef)
		n = 3, cp = c & 0x0f;
	else if (c >= 0xf0 && c <= 0xf4)
		n = 4, cp = c & 0x07;
	else
		return 0;
	if ((size_t)(end - p) < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	/* no overlong forms, no surrogates, nothing past U+10FFFF */
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

int
utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	size_t n;

	while (p < end) {
		if (*p < 0x80) {
			p++;
			continue;
		}
		if ((n = utf8_seq(p, end)) == 0)
			return 0;
		p += n;
	}
	return 1;
}

static int
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* A byte a string may hold as it is: printable ASCII but '"' and '\\'. */
static inline int
plain(unsigned char c)
{
	return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

#ifdef __SSE2__
/*
 * The first byte at or after p that is not plain (or end): sixteen bytes
 * at a time, the place of the first one found from the compare mask, so no
 * byte loop follows.  SSE2 is part of every x86-64 processor.
 */
static inline const unsigned char *
plain_run(const unsigned char *p, const unsigned char *end)
{
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\');
	const __m128i space = _mm_set1_epi8(0x20);
	__m128i x, bad;
	unsigned mask;

	for (; end - p >= 16; p += 16) {
		x = _mm_loadu_si128((const __m128i *)p);
		/* signed: below 0x20 and 0x80 and above are both "less than" 0x20 */
		bad = _mm_or_si128(_mm_cmplt_epi8(x, space),
		    _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)));
		if ((mask = (unsigned)_mm_movemask_epi8(bad)) != 0)
			return p + __builtin_ctz(mask);
	}
	for (; p < end && plain(*p); p++)
		;
	return p;
}
#else
#define ONES	0x0101010101010101ULL
#define HIGHS	0x8080808080808080ULL

/* True when none of the 8 bytes at p is a control byte, '"', '\\' or non-ASCII. */
static inline int
plain8(const unsigned char *p)
{
	uint64_t x, quote, bslash;

	memcpy(&x, p, 8);
	quote = x ^ (ONES * '"');
	bslash = x ^ (ONES * '\\');
	return (((x - ONES * 0x20) | (quote - ONES) | (bslash - ONES) | x) & HIGHS) == 0;
}

/* The first byte at or after p that is not plain (or end), eight bytes at a time. */
static inline const unsigned char *
plain_run(const unsigned char *p, const unsigned char *end)
{
	for (; end - p >= 8 && plain8(p); p += 8)
		;
	for (; p < end && plain(*p); p++)
		;
	return p;
}
#endif

/* A string; s->p is at the opening quote. */
static int
scan_string(struct scan *s)
{
	const unsigned char *p, *end = (const unsigned char *)s->end;
	size_t n;

	s->p++;
	s->escaped = 0;
	while (s->p < s->end) {
		unsigned char c;

		/* the common case: a run of plain ASCII */
		p = plain_run((const unsigned char *)s->p, end);
		s->p = (const char *)p;
		if (p == end)
			break;
		c = *p;

		if (c == '"') {
			s->p++;
			return 0;
		}
		if (c < 0x20)
			return fail(s, "not JSON: control character in a string");
		if (c == '\\') {
			s->escaped = 1;
			if (s->end - s->p < 2)
				break;
			c = (unsigned char)s->p[1];
			if (c == 'u') {
				if (s->end - s->p < 6 || !is_hex(s->p[2]) || !is_hex(s->p[3]) ||
				    !is_hex(s->p[4]) || !is_hex(s->p[5]))
					return fail(s, "not JSON: bad \\u escape");
				s->p += 6;
			} else if (strchr("\"\\/bfnrt", c) && c != '\0') {
				s->p += 2;
			} else {
				return fail(s, "not JSON: bad escape in a string");
			}
			continue;
		}
		if (c >= 0x80) {
			n = utf8_seq((const unsigned char *)s->p, (const unsigned char *)s->end);
			if (n == 0)
				return fail(s, "not valid UTF-8");
			s->p += n;
			continue;
		}
		s->p++;
	}
	return fail(s, "not JSON: unterminated string");
}

static int
scan_digits(struct scan *s)
{
	const char *start = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return s->p > start ? 0 : fail(s, "not JSON: bad number");
}

static int
scan_number(struct scan *s)
{
	if (*s->p == '-')
		s->p++;
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (scan_digits(s) < 0)
		return -1;
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (scan_digits(s) < 0)
			return -1;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (scan_digits(s) < 0)
			return -1;
	}
	return 0;
}

static int
scan_word(struct scan *s, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
		return fail(s, "not JSON: unexpected character");
	s->p += n;
	return 0;
}

static int scan_value(struct scan *s, int top);

static unsigned
hex4(const char *p)
{
	unsigned v = 0;
	int i;

	for (i = 0; i < 4; i++)
		v = v << 4 | (unsigned)(p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
	return v;
}

/* Append code point cp to out[*n..cap) as UTF-8; -1 when it does not fit. */
static int
put_utf8(unsigned long cp, char *out, size_t *n, size_t cap)
{
	size_t len = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
	static const unsigned char lead[] = { 0, 0, 0xc0, 0xe0, 0xf0 };
	size_t i;

	if (cap - *n < len)
		return -1;
	for (i = len - 1; i > 0; i--, cp >>= 6)
		out[*n + i] = (char)(0x80 | (cp & 0x3f));
	out[*n] = (char)(lead[len] | cp);
	*n += len;
	return 0;
}

/*
 * The code point of the \u escape(s) at s (a valid string's body, ending at
 * end), advancing *s past them; -1 for one that is no text: U+0000 (a C
 * string cannot hold it) or half a surrogate pair.  The grammar of RFC 8259
 * allows both; jansson's decoder refused both, and keys keep its rules.
 */
static long
unicode_escape(const char **s, const char *end)
{
	unsigned long cp = hex4(*s + 2), lo;

	*s += 6;
	if (cp >= 0xdc00 && cp <= 0xdfff)
		return -1;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		if (end - *s < 6 || (*s)[0] != '\\' || (*s)[1] != 'u')
			return -1;
		lo = hex4(*s + 2);
		if (lo < 0xdc00 || lo > 0xdfff)
			return -1;
		cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
		*s += 6;
	}
	return cp == 0 ? -1 : (long)cp;
}

/*
 * Decode the escapes of a valid JSON string's body s[0..len) into out (at
 * most cap bytes, UTF-8).  Returns the length, or -1 when it does not fit or
 * an escape is no text (see unicode_escape).
 */
static long
unescape(const char *s, size_t len, char *out, size_t cap)
{
	const char *end = s + len;
	size_t n = 0;
	long cp;
	char c;

	while (s < end) {
		if (*s != '\\') {
			if (n == cap)
				return -1;
			out[n++] = *s++;
			continue;
		}
		c = s[1];
		if (c == 'u') {
			if ((cp = unicode_escape(&s, end)) < 0 || put_utf8((unsigned long)cp, out, &n, cap) < 0)
				return -1;
			continue;
		}
		s += 2;
		if (n == cap)
			return -1;
		out[n++] = c == 'b' ? '\b' : c == 'f' ? '\f' : c == 'n' ? '\n' :
		    c == 'r' ? '\r' : c == 't' ? '\t' : c;
	}
	return (long)n;
}

/* True when the C string field is exactly key[0..klen). */
static inline int
same_name(const char *field, const char *key, size_t klen)
{
	size_t i;

	for (i = 0; i < klen; i++)
		if (field[i] != key[i])	/* field's NUL differs from key's bytes, which hold none */
			return 0;
	return field[klen] == '\0';
}

/*
 * Which of the wanted top-level members key[0..klen) is, or -1.  The key is
 * as scan_string just found it: escapes undone only when it held one.
 */
static int
wanted(const struct scan *s, const char *key, size_t klen)
{
	char buf[256];
	long n;
	int i;

	if (s->escaped) {
		if ((n = unescape(key, klen, buf, sizeof buf)) < 0)
			return -1;
		key = buf;
		klen = (size_t)n;	/* no NUL: unescape refuses \u0000 */
	}
	for (i = 0; i < s->nfields; i++)
		if (same_name(s->fields[i], key, klen))
			return i;
	return -1;
}

static int
scan_object(struct scan *s, int top)
{
	const char *key;
	size_t klen;
	int match;

	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return 0;
	}
	for (;;) {
		skip_ws(s);
		if (s->p >= s->end || *s->p != '"')
			return fail(s, "not JSON: expected a member name");
		key = s->p + 1;
		if (scan_string(s) < 0)
			return -1;
		klen = (size_t)(s->p - key - 1);
		match = top ? wanted(s, key, klen) : -1;
		s->members += top;
		skip_ws(s);
		if (s->p >= s->end || *s->p != ':')
			return fail(s, "not JSON: expected ':'");
		s->p++;
		skip_ws(s);
		if (match >= 0)
			s->vals[match] = s->p;
		if (scan_value(s, 0) < 0)
			return -1;
		if (match >= 0)
			s->vlens[match] = (size_t)(s->p - s->vals[match]);
		skip_ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			continue;
		}
		if (s->p < s->end && *s->p == '}') {
			s->p++;
			return 0;
		}
		return fail(s, "not JSON: expected ',' or '}'");
	}
}

static int
scan_array(struct scan *s)
{
	s->p++;
	skip_ws(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return 0;
	}
	for (;;) {
		skip_ws(s);
		if (scan_value(s, 0) < 0)
			return -1;
		skip_ws(s);
		if (s->p < s->end && *s->p == ',') {
			s->p++;
			continue;
		}
		if (s->p < s->end && *s->p == ']') {
			s->p++;
			return 0;
		}
		return fail(s, "not JSON: expected ',' or ']'");
	}
}

static int
scan_value(struct scan *s, int top)
{
	int r;

	if (s->p >= s->end)
		return fail(s, "not JSON: unexpected end");
	if (++s->depth > MAX_DEPTH)
		return fail(s, "not JSON: nested too deep");
	switch (*s->p) {
	case '{': r = scan_object(s, top); break;
	case '[': r = scan_array(s); break;
	case '"': r = scan_string(s); break;
	case 't': r = scan_word(s, "true"); break;
	case 'f': r = scan_word(s, "false"); break;
	case 'n': r = scan_word(s, "null"); break;
	default:
		if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
			r = scan_number(s);
		else
			r = fail(s, "not JSON: unexpected character");
	}
	s->depth--;
	return r;
}

const char *
json_scan_fields(const char *text, size_t len, const char *const *fields, int n,
    const char **vals, size_t *vlens)
{
	return json_scan_members(text, len, fields, n, vals, vlens, NULL);
}

/* Scan s->p..s->end as one JSON text; NULL when valid, else the reason. */
static const char *
scan_text(struct scan *s)
{
	int i;

	for (i = 0; i < s->nfields; i++)
		s->vals[i] = NULL;
	skip_ws(s);
	if (s->p >= s->end)
		return "not JSON: empty";
	if (scan_value(s, 1) < 0)
		return s->err;
	skip_ws(s);
	if (s->p != s->end)
		return "not JSON: text after the value";
	return NULL;
}

const char *
json_scan_members(const char *text, size_t len, const char *const *fields, int n,
    const char **vals, size_t *vlens, int *members)
{
	struct scan s = { text, text + len, NULL, 0, fields, n, vals, vlens, 0, 0, 0 };
	const char *err = scan_text(&s);

	if (err == NULL && members)
		*members = s.members;
	return err;
}

const char *
json_scan_line(const char *text, size_t len)
{
	struct scan s = { text, text + len, NULL, 0, NULL, 0, NULL, NULL, 0, 0, 0 };
	const char *err = scan_text(&s);

	/* valid JSON holds a raw newline only as whitespace, which the scan
	 * noted; an invalid text needs a look of its own */
	if (err == NULL ? s.newline : memchr(text, '\n', len) != NULL)
		return "value holds a newline";
	return err;
}

const char *
json_scan(const char *text, size_t len, const char *field, const char **val, size_t *vlen)
{
	const char *v;
	size_t vl;
	const char *err = json_scan_fields(text, len, &field, field ? 1 : 0, &v, &vl);

	if (val) {
		*val = field ? v : NULL;
		*vlen = field && v ? vl : 0;
	}
	return err;
}

long
json_key_text(const char *val, size_t vlen, char *buf, size_t cap)
{
	if (val[0] == '"')
		return unescape(val + 1, vlen - 2, buf, cap);
	{
		/* compact JSON text, through the one routine that writes it */
		FILE *f = fmemopen(buf, cap, "w");
		long n;

		if (f == NULL)
			return -1;
		setbuf(f, NULL);
		json_put_compact(f, val, vlen);
		n = ferror(f) ? -1 : ftell(f);
		fclose(f);
		return n;
	}
}
