/*
 * unit.c: run one CUnit suite and turn its failure counts into an exit status.
 */
#include <stdio.h>
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "unit.h"
#include "unit_loop.h"

int
unit_run(const char *suite_name, const struct unit_test *tests)
{
	CU_pSuite suite;
	unsigned failed;

	if (CU_initialize_registry() != CUE_SUCCESS) {
		fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
		return 2;
	}
	suite = CU_add_suite(suite_name, NULL, NULL);
	if (suite == NULL)
		goto fail;
	for (; tests->name != NULL; tests++)
		if (CU_add_test(suite, tests->name, tests->fn) == NULL)
			goto fail;
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (CU_basic_run_tests() != CUE_SUCCESS)
		goto fail;
	failed = CU_get_number_of_tests_failed() + CU_get_number_of_failures();
	CU_cleanup_registry();
	return failed == 0 ? 0 : 1;
fail:
	fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
	CU_cleanup_registry();
	return 2;
}

uv_loop_t unit_loop;
int unit_guard_fired;
static uv_timer_t unit_guard;

static void
unit_guard_cb(uv_timer_t *t)
{
	(void)t;
	unit_guard_fired = 1;
}

void
unit_loop_begin(void)
{
	unit_guard_fired = 0;
	uv_loop_init(&unit_loop);
	uv_timer_init(&unit_loop, &unit_guard);
	uv_timer_start(&unit_guard, unit_guard_cb, UNIT_GUARD_MS, 0);
}

int
unit_run_until(const int *flag)
{
	while (!*flag && !unit_guard_fired)
		uv_run(&unit_loop, UV_RUN_ONCE);
	if (!*flag)
		fprintf(stderr, "  guard timer fired\n");
	return *flag;
}

static void
unit_walk_close(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

void
unit_loop_end(void)
{
	int i;

	uv_close((uv_handle_t *)&unit_guard, NULL);
	for (i = 0; i < 50 && uv_loop_alive(&unit_loop); i++)
		uv_run(&unit_loop, UV_RUN_NOWAIT);
	if (uv_loop_alive(&unit_loop)) {
		fprintf(stderr, "  handles left open at the end of the test\n");
		CU_FAIL("handles left open");
		uv_walk(&unit_loop, unit_walk_close, NULL);
		uv_run(&unit_loop, UV_RUN_DEFAULT);
	}
	UNIT_EXPECT_INT("uv_loop_close", uv_loop_close(&unit_loop), 0);
}

struct sockaddr_in
unit_addr4(const char *ip, int port)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	inet_pton(AF_INET, ip, &sin.sin_addr);
	return sin;
}
