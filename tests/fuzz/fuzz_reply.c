/*
 * fuzz_reply.c: libFuzzer harness for the client-side reply parser. The
 * input is a byte stream from a server: consume replies from its front
 * until the parser asks for more or rejects a line, and check what it
 * returns for each one (code range, consumed inside the input, enhanced
 * code shape, capabilities parsed from every reply).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kumo.h"
#include "smtp_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	struct smtp_reply r;
	struct smtp_caps caps;
	size_t off = 0, consumed;
	int rc;

	smtp_reply_init(&r);
	while (off < size) {
		consumed = 0;
		rc = smtp_reply_parse(p + off, size - off, &r, &consumed);
		if (rc != 0) {
			if (rc != KUMO_EAGAIN && rc != KUMO_EPARSE && rc != KUMO_ETOOLONG)
				abort();
			break;
		}
		if (consumed == 0 || consumed > size - off)
			abort();
		if (r.code < 200 || r.code > 599 || r.nlines < 1 || r.nlines > SMTP_REPLY_LINES_MAX)
			abort();
		if (r.enhanced[0] != '\0' && r.enhanced[0] != '0' + r.code / 100)
			abort();
		if (strlen(r.enhanced) >= sizeof(r.enhanced))
			abort();
		smtp_caps_parse(&r, &caps);
		if (caps.flags != 0 && r.code != 250)
			abort();
		off += consumed;
	}
	smtp_reply_release(&r);
	return 0;
}
