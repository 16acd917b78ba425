/*
 * pg-cdc-tail logical mode: pgoutput's text values written as JSON, the way
 * row_to_json writes them in trigger mode, so both modes emit the same events.
 */
#include <string.h>

#include "jsonout.h"
#include "pgoutput.h"

void
put_value(FILE *out, enum kind kind, const char *v, size_t len)
{
	size_t i;

	switch (kind) {
	case K_BOOL:
		fputs(len > 0 && v[0] == 't' ? "true" : "false", out);
		return;
	case K_NUMBER:
		/* NaN and the infinities are no JSON numbers: row_to_json quotes them too */
		if (len > 0 && (v[0] == '-' ? len > 1 && v[1] >= '0' && v[1] <= '9' : v[0] >= '0' && v[0] <= '9')) {
			fwrite(v, 1, len, out);
			return;
		}
		break;
	case K_JSON:
		json_put_oneline(out, v, len);
		return;
	case K_JSONB:
		fwrite(v, 1, len, out);
		return;
	case K_TIMESTAMP:
		/* ISO 8601 as row_to_json writes it: a T between date and time, offsets as +hh:mm */
		if (len >= 19 && v[10] == ' ' && v[len - 1] >= '0' && v[len - 1] <= '9') {
			fputc('"', out);
			fwrite(v, 1, 10, out);
			fputc('T', out);
			fwrite(v + 11, 1, len - 11, out);
			for (i = len; i > 19 && v[i - 1] != '+' && v[i - 1] != '-'; i--)
				;
			if (i > 19 && len - i == 2)
				fputs(":00", out);
			fputc('"', out);
			return;
		}
		break;
	case K_TEXT:
		break;
	}
	json_put_string(out, v, len);
}

/* {"col":value,...} of the columns of vals; only replica-identity ones if ident_only. */
void
put_row(FILE *out, const struct relation *rel, const struct value *vals, int n, int ident_only,
    const struct value *fill)
{
	int i, first = 1;

	fputc('{', out);
	for (i = 0; i < n && i < rel->ncols; i++) {
		const struct value *v = &vals[i];

		if (ident_only && !rel->cols[i].ident)
			continue;
		if (v->kind == 'u' && fill && fill[i].kind != 'u')
			v = &fill[i];
		if (v->kind == 'u')
			continue;	/* never a fake value: named in "unchanged" instead */
		if (!first)
			fputc(',', out);
		first = 0;
		json_put_string(out, rel->cols[i].name, strlen(rel->cols[i].name));
		fputc(':', out);
		if (v->kind == 'n')
			fputs("null", out);
		else
			put_value(out, rel->cols[i].kind, v->data, v->len);
	}
	fputc('}', out);
}

void
put_key(FILE *out, const struct relation *rel, const struct value *vals, int n)
{
	int i;

	fputc('{', out);
	for (i = 0; i < rel->nkey; i++) {
		int c = rel->key[i];

		if (i > 0)
			fputc(',', out);
		json_put_string(out, rel->cols[c].name, strlen(rel->cols[c].name));
		fputc(':', out);
		if (c >= n || vals[c].kind == 'n' || vals[c].kind == 'u')
			fputs("null", out);
		else
			put_value(out, rel->cols[c].kind, vals[c].data, vals[c].len);
	}
	fputc('}', out);
}

int
key_changed(const struct relation *rel, const struct value *a, const struct value *b, int n)
{
	int i;

	for (i = 0; i < rel->nkey; i++) {
		int c = rel->key[i];

		if (c >= n || a[c].kind == 'u' || b[c].kind == 'u')
			continue;
		if (a[c].kind != b[c].kind || a[c].len != b[c].len ||
		    (a[c].len && memcmp(a[c].data, b[c].data, a[c].len) != 0))
			return 1;
	}
	return 0;
}

