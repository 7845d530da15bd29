/*
 * unit.h: the few helpers every CUnit suite shares. Each suite is its own
 * program (tests/unit/test_<module>.c) so one crash names its module.
 */
#ifndef KUMO_UNIT_H
#define KUMO_UNIT_H

#include <CUnit/CUnit.h>

struct unit_test {
	const char *name;
	CU_TestFunc fn;
};

/*
 * Register one suite of tests, run it verbosely and return the exit status:
 * 0 only if every assertion passed. CU_basic_run_tests() reports success
 * even when assertions fail, so the status comes from the failure counts.
 */
int unit_run(const char *suite, const struct unit_test *tests);

/* Table-driven cases print what they got and wanted before asserting. */
#define UNIT_EXPECT_INT(what, got, want)                                                           \
	do {                                                                                       \
		long long g_ = (long long)(got), w_ = (long long)(want);                           \
		if (g_ != w_)                                                                      \
			fprintf(stderr, "  %s: got %lld, want %lld\n", (what), g_, w_);            \
		CU_ASSERT_EQUAL(g_, w_);                                                           \
	} while (0)

#define UNIT_EXPECT_STR(what, got, want)                                                           \
	do {                                                                                       \
		const char *g_ = (got), *w_ = (want);                                              \
		if (g_ == NULL || w_ == NULL || strcmp(g_, w_) != 0)                               \
			fprintf(stderr, "  %s: got \"%s\", want \"%s\"\n", (what),                 \
				g_ ? g_ : "(null)", w_ ? w_ : "(null)");                           \
		CU_ASSERT_TRUE(g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0);                   \
	} while (0)

#endif
