/* test_cidr.c: placeholder until the module lands. */
#include "unit.h"

static void
test_placeholder(void)
{
	CU_PASS("module not written yet");
}

int
main(void)
{
	static const struct unit_test tests[] = {{"placeholder", test_placeholder}, {NULL, NULL}};
	return unit_run("cidr", tests);
}
