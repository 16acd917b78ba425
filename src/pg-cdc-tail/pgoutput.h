/*
 * pg-cdc-tail logical mode: the relations and tuples pgoutput sends, and how
 * their values are written as JSON.
 */
#ifndef PG_CDC_TAIL_PGOUTPUT_H
#define PG_CDC_TAIL_PGOUTPUT_H

#include <stdint.h>
#include <stdio.h>

/* How a column's text is written in JSON: as row_to_json renders the type. */
enum kind { K_TEXT, K_BOOL, K_NUMBER, K_JSON, K_JSONB, K_TIMESTAMP };

struct column {
	char *name;
	uint32_t type;
	int32_t typmod;
	enum kind kind;
	int ident;		/* part of the replica identity */
};

struct relation {
	uint32_t oid;
	int emit;		/* among the tables asked for */
	char *prefix;		/* ,"table":"schema.name","key": */
	char *schema;		/* --schema-events: its schema, as schema.c keeps one */
	int ncols;
	struct column *cols;
	int nkey;
	int *key;		/* indexes of the primary key columns */
};

/* One column of a tuple as pgoutput sent it. */
struct value {
	char kind;		/* 'n' null, 'u' unchanged TOAST, 't' text */
	uint32_t len;
	const char *data;
};

/* One value as row_to_json renders its type. */
void put_value(FILE *out, enum kind kind, const char *v, size_t len);
/*
 * {"col":value,...} of vals; only the replica-identity columns if ident_only.
 * An unchanged TOAST value is taken from fill when fill has it, else left out.
 */
void put_row(FILE *out, const struct relation *rel, const struct value *vals, int n, int ident_only,
    const struct value *fill);
/* {"keycol":value,...}: the primary key (or identity) columns of vals. */
void put_key(FILE *out, const struct relation *rel, const struct value *vals, int n);
/* Do the key columns of two tuples differ (unchanged TOAST values aside)? */
int key_changed(const struct relation *rel, const struct value *a, const struct value *b, int n);

#endif
