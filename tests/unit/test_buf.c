/* test_buf.c: the capped byte buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kumo.h"
#include "unit.h"

static void
test_append_and_terminate(void)
{
	struct buf *b = buf_new(0);

	CU_ASSERT_EQUAL(buf_append(b, "hello", 5), 0);
	CU_ASSERT_EQUAL(buf_puts(b, ", world"), 0);
	CU_ASSERT_EQUAL(buf_putc(b, '!'), 0);
	UNIT_EXPECT_INT("len", b->len, 13);
	UNIT_EXPECT_STR("text", b->data, "hello, world!");
	CU_ASSERT_EQUAL(b->data[b->len], '\0');
	buf_free(&b);
	CU_ASSERT_PTR_NULL(b);
	buf_free(&b); /* NULL is fine */
}

static void
test_cap_table(void)
{
	/* Each row: cap, bytes already in, bytes to append, want result, want len after. */
	static const struct {
		size_t max, have, add;
		int want;
		size_t want_len;
	} rows[] = {
		{10, 0, 10, 0, 10},	       {10, 0, 11, KUMO_ENOSPACE, 0}, {10, 5, 5, 0, 10},
		{10, 5, 6, KUMO_ENOSPACE, 5}, {1, 0, 1, 0, 1},	      {1, 1, 1, KUMO_ENOSPACE, 1},
		{0, 0, 100000, 0, 100000},
	};
	size_t i;

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct buf b;
		char *bytes = xcalloc(1, rows[i].have + rows[i].add + 1);
		char what[64];

		buf_init(&b, rows[i].max);
		CU_ASSERT_EQUAL(buf_append(&b, bytes, rows[i].have), 0);
		snprintf(what, sizeof(what), "row %zu result", i);
		UNIT_EXPECT_INT(what, buf_append(&b, bytes, rows[i].add), rows[i].want);
		snprintf(what, sizeof(what), "row %zu len", i);
		UNIT_EXPECT_INT(what, b.len, rows[i].want_len);
		buf_release(&b);
		free(bytes);
	}
}

static void
test_appendf_cap(void)
{
	struct buf b;

	buf_init(&b, 8);
	CU_ASSERT_EQUAL(buf_appendf(&b, "%d-%s", 42, "ab"), 0);
	UNIT_EXPECT_STR("formatted", b.data, "42-ab");
	/* Would make 9 bytes: refused whole, buffer unchanged. */
	UNIT_EXPECT_INT("over cap", buf_appendf(&b, "%s", "xyzw"), KUMO_ENOSPACE);
	UNIT_EXPECT_STR("unchanged", b.data, "42-ab");
	buf_release(&b);
}

static void
test_reserve_commit_drain(void)
{
	struct buf b;
	char *p;

	buf_init(&b, 16);
	p = buf_reserve(&b, 6);
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	memcpy(p, "abcdef", 6);
	buf_commit(&b, 4);
	UNIT_EXPECT_STR("committed 4", b.data, "abcd");
	CU_ASSERT_PTR_NULL(buf_reserve(&b, 13));
	buf_drain(&b, 1);
	UNIT_EXPECT_STR("drained 1", b.data, "bcd");
	buf_drain(&b, 99);
	UNIT_EXPECT_INT("drained all", b.len, 0);
	UNIT_EXPECT_STR("empty", b.data, "");
	buf_release(&b);
}

static void
test_set_max_and_steal(void)
{
	struct buf b;
	size_t n;
	char *s;

	buf_init(&b, 0);
	buf_puts(&b, "0123456789");
	UNIT_EXPECT_INT("shrink below len", buf_set_max(&b, 5), KUMO_ENOSPACE);
	UNIT_EXPECT_INT("shrink to len", buf_set_max(&b, 10), 0);
	UNIT_EXPECT_INT("full", buf_putc(&b, 'x'), KUMO_ENOSPACE);
	s = buf_steal(&b, &n);
	UNIT_EXPECT_INT("stolen len", n, 10);
	UNIT_EXPECT_STR("stolen", s, "0123456789");
	UNIT_EXPECT_INT("emptied", b.len, 0);
	CU_ASSERT_PTR_NULL(b.data);
	free(s);
	s = buf_steal(&b, NULL);
	UNIT_EXPECT_STR("steal of empty", s, "");
	free(s);
	buf_release(&b);
}

static void
test_binary_growth(void)
{
	struct buf b;
	size_t i;
	int ok = 1;

	buf_init(&b, 0);
	for (i = 0; i < 70000; i++)
		if (buf_putc(&b, (int)(i & 0xff)) != 0)
			ok = 0;
	CU_ASSERT(ok);
	UNIT_EXPECT_INT("len", b.len, 70000);
	for (i = 0; i < 70000; i++)
		if ((unsigned char)b.data[i] != (i & 0xff))
			ok = 0;
	CU_ASSERT(ok);
	buf_release(&b);
}

int
main(void)
{
	static const struct unit_test tests[] = {
		{"append and terminate", test_append_and_terminate},
		{"cap table", test_cap_table},
		{"appendf respects the cap", test_appendf_cap},
		{"reserve, commit, drain", test_reserve_commit_drain},
		{"set_max and steal", test_set_max_and_steal},
		{"binary growth", test_binary_growth},
		{NULL, NULL},
	};
	return unit_run("buf", tests);
}
