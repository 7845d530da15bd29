/*
 * fuzz_proxy.c: libFuzzer harness for lib/proxy.c's peer-input parsers.
 * Even first byte: the input after it is a PROXY v1/v2 header candidate;
 * check the result is 0/EAGAIN/EPARSE, consumed stays inside the input,
 * the header alone parses the same, and a prefix of a header never parses
 * as complete. Odd first byte: the rest is what a SOCKS5 proxy sends, fed
 * to a client (its options from the first byte) in chunks whose sizes come
 * from the second byte; check return codes and consumed counts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kumo.h"
#include "proxy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_header(const char *p, size_t n)
{
	struct proxy_info pi;
	size_t used = 0, used2 = 0;
	int rc = proxy_header_parse(p, n, &pi, &used);

	if (rc != 0 && rc != KUMO_EAGAIN && rc != KUMO_EPARSE)
		abort();
	if (rc != 0)
		return;
	if (used == 0 || used > n || (pi.version != 1 && pi.version != 2))
		abort();
	if (proxy_header_parse(p, used, &pi, &used2) != 0 || used2 != used)
		abort();
	if (used > 1 && proxy_header_parse(p, used - 1, &pi, &used2) != KUMO_EAGAIN)
		abort();
}

static void
fuzz_socks5(uint8_t opts, const char *p, size_t n)
{
	struct socks5_client c;
	struct buf out;
	size_t off = 0, used, chunk = n > 0 ? (size_t)(uint8_t)p[0] % 7 + 1 : 1;
	int rc = 0;
	char name[64];

	if (n > 0) {
		p++;
		n--;
	}
	buf_init(&out, 4096);
	if (socks5_init(&c,
	                (opts & 2)   ? "mx.example"
	                : (opts & 4) ? "::1"
	                             : "127.0.0.1",
	                25, (opts & 8) ? "user" : NULL, (opts & 8) ? "pass" : NULL) != 0)
		abort();
	if ((opts & 16) && socks5_set_source(&c, "127.0.0.2") != 0)
		abort();
	if (socks5_start(&c, &out) != 0)
		abort();
	while (off < n) {
		size_t len = n - off < chunk ? n - off : chunk;
		rc = socks5_feed(&c, p + off, len, &out, &used);
		if (used > len)
			abort();
		if (rc == 0 && used != len)
			abort();
		off += used;
		if (rc != 0)
			break;
	}
	if (rc == 1) {
		if (c.state != SOCKS5_READY)
			abort();
		socks5_addr_format(&c.bound, name, sizeof(name));
	} else if (rc < 0) {
		if (c.state != SOCKS5_FAILED || socks5_error_str(rc) == NULL)
			abort();
	}
	buf_release(&out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if ((data[0] & 1) == 0)
		fuzz_header((const char *)data + 1, size - 1);
	else
		fuzz_socks5(data[0], (const char *)data + 1, size - 1);
	return 0;
}
