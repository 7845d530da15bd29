/*
 * test_spool.c: daemon/spool.c on a real directory and a real libuv loop:
 * store, recover, the header's round trip (with the in-place retry fields),
 * the ordering of operations on one message (a rewrite still on the thread
 * pool must not bring back a removed file; of two rewrites the newer wins),
 * spool_touch in place and behind a rewrite, incomplete files removed at
 * recovery, and the directory lock against a second daemon.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "buf.h"
#include "kumo.h"
#include "unit.h"

#include "kumod.h"

static char tmpdir[64];
static uv_loop_t loop;
static int stored, store_status;

static void
on_stored(struct msg *m, int status, void *arg)
{
	(void)arg;
	m->spooled = status == 0;
	store_status = status;
	stored++;
}

/* Run the loop until the spool has nothing outstanding (bounded). */
static void
drain(struct spool *sp)
{
	for (int i = 0; i < 2000 && spool_busy(sp) > 0; i++) {
		uv_run(&loop, UV_RUN_ONCE);
	}
	CU_ASSERT_EQUAL(spool_busy(sp), 0);
}

static struct msg *
make_msg(const char *id, const char *body, unsigned nrcpts)
{
	struct msg *m = msg_new();

	snprintf(m->id, sizeof(m->id), "%s", id);
	m->sender = xstrdup("a@example.test");
	m->rcpts = xcalloc(nrcpts, sizeof(char *));
	for (unsigned i = 0; i < nrcpts; i++)
		m->rcpts[i] = xasprintf("r%u@example.test", i);
	m->nrcpts = nrcpts;
	m->domain = xstrdup("example.test");
	m->queue = xstrdup("example.test");
	m->created = 1700000000.25;
	m->data = blob_new(body, strlen(body));
	return m;
}

static int
file_exists(const char *name)
{
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/spool/%s", tmpdir, name);
	return stat(path, &st) == 0;
}

static size_t
count_files(void)
{
	char path[128];
	DIR *d;
	struct dirent *de;
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/spool", tmpdir);
	d = opendir(path);
	if (d == NULL)
		return 0;
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static struct spool *
open_spool(void)
{
	char path[128], *err = NULL;
	struct spool *sp;

	snprintf(path, sizeof(path), "%s/spool", tmpdir);
	sp = spool_open(&loop, path, 0, &err);
	if (sp == NULL)
		fprintf(stderr, "  spool_open: %s\n", err);
	free(err);
	CU_ASSERT_PTR_NOT_NULL_FATAL(sp);
	return sp;
}

struct recovered {
	struct msg *m[16];
	size_t n;
};

static void
on_recovered(struct msg *m, void *arg)
{
	struct recovered *r = arg;

	if (r->n < KUMO_NELEM(r->m))
		r->m[r->n++] = m;
	else
		msg_free(&m);
}

static void
recovered_free(struct recovered *r)
{
	while (r->n > 0)
		msg_free(&r->m[--r->n]);
}

static void
wipe(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s/spool", tmpdir);
	CU_ASSERT_EQUAL(system(cmd), 0);
}

/* A stored message comes back whole, retry fields included. */
static void
test_store_recover(void)
{
	struct spool *sp;
	struct msg *m = make_msg("m1", "Subject: x\r\n\r\nbody\r\n", 2);
	struct recovered r = {0};

	wipe();
	sp = open_spool();
	m->attempts = 3;
	m->due_wall = 1700000123.5;
	stored = 0;
	spool_store(sp, m, on_stored, NULL);
	drain(sp);
	UNIT_EXPECT_INT("store callbacks", stored, 1);
	UNIT_EXPECT_INT("store status", store_status, 0);
	msg_free(&m);
	spool_close(&sp);
	sp = open_spool();
	UNIT_EXPECT_INT("recovered", spool_recover(sp, on_recovered, &r), 1);
	if (r.n == 1) {
		UNIT_EXPECT_STR("id", r.m[0]->id, "m1");
		UNIT_EXPECT_INT("rcpts", r.m[0]->nrcpts, 2);
		UNIT_EXPECT_STR("rcpt 1", r.m[0]->rcpts[1], "r1@example.test");
		UNIT_EXPECT_INT("attempts", r.m[0]->attempts, 3);
		UNIT_EXPECT_INT("due (ms)", (long long)(r.m[0]->due_wall * 1000), 1700000123500LL);
		UNIT_EXPECT_INT("size", r.m[0]->data->len, strlen("Subject: x\r\n\r\nbody\r\n"));
		UNIT_EXPECT_INT("spooled", r.m[0]->spooled, 1);
	}
	recovered_free(&r);
	spool_close(&sp);
}

/* spool_touch rewrites the retry fields in place; the rest of the file stays. */
static void
test_touch_in_place(void)
{
	struct spool *sp;
	struct msg *m = make_msg("m2", "hello\r\n", 1);
	struct recovered r = {0};

	wipe();
	sp = open_spool();
	spool_store(sp, m, on_stored, NULL);
	drain(sp);
	m->attempts = 12;
	m->due_wall = 1800000000.125;
	UNIT_EXPECT_INT("touch", spool_touch(sp, m), 0);
	spool_close(&sp);
	msg_free(&m);
	sp = open_spool();
	UNIT_EXPECT_INT("recovered", spool_recover(sp, on_recovered, &r), 1);
	if (r.n == 1) {
		UNIT_EXPECT_INT("attempts after touch", r.m[0]->attempts, 12);
		UNIT_EXPECT_INT("due after touch (ms)", (long long)(r.m[0]->due_wall * 1000),
				1800000000125LL);
		UNIT_EXPECT_INT("body intact", r.m[0]->data->len, 7);
	}
	recovered_free(&r);
	/* A file that is gone is not an error (the message finished meanwhile). */
	m = make_msg("gone", "x", 1);
	UNIT_EXPECT_INT("touch of a missing file", spool_touch(sp, m), 0);
	msg_free(&m);
	spool_close(&sp);
}

/*
 * The resurrection case: a rewrite is queued (not yet on disk) and the
 * message is then removed. Once the spool drains, the file must be gone.
 */
static void
test_remove_after_rewrite(void)
{
	struct spool *sp;
	struct msg *m = make_msg("m3", "data\r\n", 3);

	wipe();
	sp = open_spool();
	spool_store(sp, m, on_stored, NULL);
	drain(sp);
	CU_ASSERT_TRUE(file_exists("m3"));
	free(m->rcpts[--m->nrcpts]);
	spool_rewrite(sp, m);
	spool_remove(sp, m); /* before the rewrite's batch ran */
	msg_free(&m);
	drain(sp);
	CU_ASSERT_FALSE(file_exists("m3"));
	UNIT_EXPECT_INT("files left", count_files(), 0);
	/* The same with the removal arriving while the store itself is in flight. */
	m = make_msg("m4", "data\r\n", 1);
	stored = 0;
	spool_store(sp, m, on_stored, NULL);
	spool_remove(sp, m);
	drain(sp);
	UNIT_EXPECT_INT("store still answered", stored, 1);
	CU_ASSERT_FALSE(file_exists("m4"));
	msg_free(&m);
	spool_close(&sp);
}

/* Two rewrites in a row: the file ends with the newer one, never the older. */
static void
test_rewrites_in_order(void)
{
	struct spool *sp;
	struct msg *m = make_msg("m5", "data\r\n", 4);
	struct recovered r = {0};

	wipe();
	sp = open_spool();
	spool_store(sp, m, on_stored, NULL);
	free(m->rcpts[--m->nrcpts]);
	spool_rewrite(sp, m); /* waits for the store */
	free(m->rcpts[--m->nrcpts]);
	spool_rewrite(sp, m); /* replaces the waiting one */
	m->attempts = 2;
	m->due_wall = 1700000999;
	spool_touch(sp, m); /* folded into the waiting rewrite */
	drain(sp);
	msg_free(&m);
	spool_close(&sp);
	sp = open_spool();
	UNIT_EXPECT_INT("recovered", spool_recover(sp, on_recovered, &r), 1);
	if (r.n == 1) {
		UNIT_EXPECT_INT("recipients of the newest rewrite", r.m[0]->nrcpts, 2);
		UNIT_EXPECT_INT("attempts of the touch", r.m[0]->attempts, 2);
	}
	recovered_free(&r);
	UNIT_EXPECT_INT("no .tmp left", count_files(), 1);
	spool_close(&sp);
}

/* A file cut short (its length differs from the header's size) is removed at recovery. */
static void
test_incomplete_removed(void)
{
	struct spool *sp;
	struct msg *m = make_msg("m6", "0123456789\r\n", 1);
	struct recovered r = {0};
	char path[128];

	wipe();
	sp = open_spool();
	spool_store(sp, m, on_stored, NULL);
	drain(sp);
	msg_free(&m);
	spool_close(&sp);
	snprintf(path, sizeof(path), "%s/spool/m6", tmpdir);
	{
		struct stat st;

		CU_ASSERT_EQUAL_FATAL(stat(path, &st), 0);
		CU_ASSERT_EQUAL(truncate(path, st.st_size - 3), 0);
	}
	sp = open_spool();
	UNIT_EXPECT_INT("recovered", spool_recover(sp, on_recovered, &r), 0);
	CU_ASSERT_FALSE(file_exists("m6"));
	recovered_free(&r);
	spool_close(&sp);
}

/* A second daemon on the same spool is refused, naming the directory. */
static void
test_lock(void)
{
	char path[128], *err = NULL;
	struct spool *a, *b;

	wipe();
	a = open_spool();
	snprintf(path, sizeof(path), "%s/spool", tmpdir);
	b = spool_open(&loop, path, 0, &err);
	CU_ASSERT_PTR_NULL(b);
	CU_ASSERT_TRUE(err != NULL && strstr(err, "in use by another kumod") != NULL &&
		       strstr(err, path) != NULL);
	if (err != NULL)
		fprintf(stderr, "  (got: %s)\n", err);
	free(err);
	spool_close(&b);
	spool_close(&a);
	/* Released at close: the next daemon may take it. */
	a = open_spool();
	spool_close(&a);
}

int
main(void)
{
	static const struct unit_test tests[] = {
	    {"store and recover, retry fields included", test_store_recover},
	    {"spool_touch in place", test_touch_in_place},
	    {"a removal waits for a rewrite in flight", test_remove_after_rewrite},
	    {"rewrites land in order, the newest wins", test_rewrites_in_order},
	    {"a file cut short is removed at recovery", test_incomplete_removed},
	    {"the spool directory is locked", test_lock},
	    {NULL, NULL},
	};
	char cmd[128];
	int rc;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_spool.XXXXXX");
	if (mkdtemp(tmpdir) == NULL)
		return 2;
	uv_loop_init(&loop);
	rc = unit_run("spool", tests);
	uv_run(&loop, UV_RUN_NOWAIT);
	uv_loop_close(&loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		rc = rc ? rc : 1;
	return rc;
}
