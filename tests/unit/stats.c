/*
 * Unit tests of the reports' two forms: a figure of several samples is an
 * object in the JSON line and one labelled sample each in the metrics file
 * (HELP and TYPE once), labels are escaped, unknown values are null and
 * have no sample.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "stats.h"
#include "check.h"

/* What f holds once written and read back. */
static char *
slurp(FILE *f)
{
	static char buf[4096];
	size_t n;

	rewind(f);
	n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	return buf;
}

int
main(void)
{
	struct figures fig = { 0 };
	char *l0 = stats_labels("topic", "a\"b\\c", "partition", "0", NULL);
	char *l1 = stats_labels("topic", "t", "partition", "1", NULL);
	char path[] = "/tmp/stats-unit.XXXXXX", *text, *json;
	FILE *f = tmpfile();
	struct stat st = { 0 };
	int fd;

	CHECK(strcmp(l0, "topic=\"a\\\"b\\\\c\",partition=\"0\"") == 0, "labels escaped: %s", l0);
	fig_add(&fig, "lines", "Lines.", 1, 12);
	fig_add(&fig, "lag", "Lag.", 0, NAN);
	fig_sample(&fig, "part_lag", "Lag of one.", 0, 3, l0, "a/0");
	fig_sample(&fig, "part_lag", "Lag of one.", 0, 0.5, l1, "t/1");
	fig_add(&fig, "last", "Last.", 0, 7);

	CHECK(stats_line(f, "s", &fig) == 0, "the line is written");
	json = slurp(f);
	text = strstr(json, "\"lines\"");
	CHECK(text && strcmp(text, "\"lines\":12,\"lag\":null,\"part_lag\":{\"a/0\":3,\"t/1\":0.5},\"last\":7}\n") == 0,
	    "the line: %s", json);
	CHECK(strncmp(json, "{\"stage\":\"s\",\"time\":\"", 20) == 0, "stage and time first: %s", json);
	fclose(f);

	fd = mkstemp(path);
	CHECK(fd >= 0 && stats_metrics(path, "s", NULL, &fig) == 0, "the metrics file is written");
	f = fopen(path, "r");
	text = slurp(f);
	CHECK(strcmp(text,
	    "# HELP pgcdc_lines_total Lines.\n# TYPE pgcdc_lines_total counter\npgcdc_lines_total{stage=\"s\"} 12\n"
	    "# HELP pgcdc_lag Lag.\n# TYPE pgcdc_lag gauge\n"
	    "# HELP pgcdc_part_lag Lag of one.\n# TYPE pgcdc_part_lag gauge\n"
	    "pgcdc_part_lag{stage=\"s\",topic=\"a\\\"b\\\\c\",partition=\"0\"} 3\n"
	    "pgcdc_part_lag{stage=\"s\",topic=\"t\",partition=\"1\"} 0.5\n"
	    "# HELP pgcdc_last Last.\n# TYPE pgcdc_last gauge\npgcdc_last{stage=\"s\"} 7\n") == 0,
	    "the metrics: %s", text);
	fclose(f);
	/* the labels of --metrics-label come after the stage, before a sample's own; the file is for all to read */
	CHECK(stats_metrics(path, "s", "pipeline=\"sink-1\"", &fig) == 0, "the metrics file with labels");
	f = fopen(path, "r");
	text = slurp(f);
	CHECK(strstr(text, "\npgcdc_lines_total{stage=\"s\",pipeline=\"sink-1\"} 12\n") != NULL &&
	    strstr(text, "\npgcdc_part_lag{stage=\"s\",pipeline=\"sink-1\",topic=\"t\",partition=\"1\"} 0.5\n") != NULL,
	    "the labelled metrics: %s", text);
	fclose(f);
	umask(077);
	CHECK(stats_metrics(path, "s", NULL, &fig) == 0 && stat(path, &st) == 0 && (st.st_mode & 0777) == 0644,
	    "mode 0644 under umask 077: %o", (unsigned)(st.st_mode & 0777));
	unlink(path);
	free(l0);
	free(l1);
	free(fig.m);
	printf("stats: %d passed, %d failed\n", passed, failed);
	return failed > 0;
}
