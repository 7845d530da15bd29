/*
 * fuzz_ctl.c: libFuzzer harness for the control protocol's peer input. The
 * bytes are a client's stream: fed to the line reader in uneven pieces with
 * a small cap (so overlong lines are exercised), each line parsed as a
 * request the way daemon/control.c does and answered with an encoded error
 * that must parse back. The same lines are then read as a server's replies
 * (ctl_msg_parse), since kumoctl and kumotop read those.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ctl.h"
#include "kumo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
one_line(const char *line, size_t len)
{
	struct ctl_request req;
	struct ctl_msg m;
	char *err = NULL, *reply;
	size_t rlen;
	int rc = ctl_request_parse(line, len, &req, &err);

	if (rc == 0) {
		if (err != NULL || req.cmd == NULL || *req.cmd == '\0' ||
		    !json_is_object(req.args) || req.id < 0)
			abort();
		reply = ctl_encode_result(req.id, req.args, &rlen);
	} else {
		if (rc != KUMO_EPARSE || err == NULL || req.root != NULL)
			abort();
		reply = ctl_encode_error(req.has_id ? req.id : -1, err, &rlen);
	}
	/* What the server would send must be one line that a client parses. */
	if (rlen == 0 || reply[rlen - 1] != '\n' || memchr(reply, '\n', rlen - 1) != NULL)
		abort();
	free(err);
	err = NULL;
	if (ctl_msg_parse(reply, rlen - 1, &m, &err) != 0)
		abort();
	if (m.kind != (rc == 0 ? CTL_MSG_RESULT : CTL_MSG_ERROR))
		abort();
	ctl_msg_clear(&m);
	free(reply);
	ctl_request_clear(&req);

	/* The same bytes as a reply. */
	if (ctl_msg_parse(line, len, &m, &err) == 0) {
		if (err != NULL || m.root == NULL || m.len != len)
			abort();
		ctl_msg_clear(&m);
	} else if (err == NULL) {
		abort();
	}
	free(err);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ctl_reader r;
	size_t off = 0, step = 1;
	char *line;
	size_t len;
	int rc;

	ctl_reader_init(&r, 256);
	while (off < size) {
		size_t n = size - off < step ? size - off : step;
		size_t took = ctl_reader_feed(&r, data + off, n);

		off += took;
		step = step * 3 % 97 + 1;
		while ((rc = ctl_reader_next(&r, &line, &len)) != 0) {
			if (rc == 1) {
				if (len > 256 || line[len] != '\0')
					abort();
				one_line(line, len);
			} else if (rc != KUMO_ETOOLONG) {
				abort();
			}
		}
		if (r.in.len > 257)
			abort();
	}
	ctl_reader_release(&r);
	return 0;
}
