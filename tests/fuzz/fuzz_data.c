/*
 * fuzz_data.c: libFuzzer harness for the DATA decoder and encoder. The first
 * byte picks a split point and an output cap; the rest is the stream after
 * a 354. It is decoded whole and in two pieces (as a connection would feed
 * it, stopping at the end of data), and the two must agree on everything:
 * return, consumed bytes, output, octets and overflow. A difference aborts,
 * so the fuzzer hunts for split-dependent behaviour. Then the round trip:
 * decode(encode(x)) must give x back (plus the CRLF the encoder adds).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kumo.h"
#include "smtp_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct result {
	int rc;
	size_t consumed;
	struct smtp_dot_dec d;
	struct buf out;
};

static void
feed(const char *in, size_t len, size_t cut, size_t cap, struct result *res)
{
	size_t consumed;

	smtp_dot_dec_init(&res->d);
	buf_init(&res->out, cap);
	res->rc = smtp_dot_decode(&res->d, in, cut, &res->out, &consumed);
	if (consumed > cut || (res->rc == 0 && consumed != cut))
		abort();
	res->consumed = consumed;
	if (res->rc == 0) {
		res->rc = smtp_dot_decode(&res->d, in + cut, len - cut, &res->out, &consumed);
		if (consumed > len - cut || (res->rc == 0 && consumed != len - cut))
			abort();
		res->consumed += consumed;
	}
	if (res->rc != 0 && res->rc != 1)
		abort();
}

static void
round_trip(const char *x, size_t len, size_t cut)
{
	struct smtp_dot_enc e;
	struct smtp_dot_dec d;
	struct buf enc, dec;
	size_t consumed, want = len;

	buf_init(&enc, 0);
	buf_init(&dec, 0);
	smtp_dot_enc_init(&e);
	if (smtp_dot_encode(&e, &enc, x, cut) != 0 ||
	    smtp_dot_encode(&e, &enc, x + cut, len - cut) != 0 ||
	    smtp_dot_encode_end(&e, &enc) != 0)
		abort();
	smtp_dot_dec_init(&d);
	/* The whole encoding, and nothing before its last byte, ends the data. */
	if (smtp_dot_decode(&d, enc.data, enc.len, &dec, &consumed) != 1 || consumed != enc.len)
		abort();
	if (len > 0 && !(len >= 2 && x[len - 2] == '\r' && x[len - 1] == '\n'))
		want += 2;
	if (dec.len != want || (len > 0 && memcmp(dec.data, x, len) != 0))
		abort();
	if (want != len && memcmp(dec.data + len, "\r\n", 2) != 0)
		abort();
	buf_release(&enc);
	buf_release(&dec);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in;
	size_t len, cut, cap;
	struct result whole, split;

	if (size < 1)
		return 0;
	in = (const char *)data + 1;
	len = size - 1;
	cut = len > 0 ? ((size_t)data[0] * 7919u) % (len + 1) : 0;
	/* Odd first byte: a small cap to exercise overflow; even: uncapped. */
	cap = (data[0] & 1) ? (size_t)(data[0] >> 1) + 1 : 0;

	feed(in, len, len, cap, &whole);
	feed(in, len, cut, cap, &split);
	if (whole.rc != split.rc || whole.consumed != split.consumed ||
	    whole.d.overflow != split.d.overflow || whole.d.octets != split.d.octets ||
	    whole.out.len != split.out.len ||
	    (whole.out.len > 0 && memcmp(whole.out.data, split.out.data, whole.out.len) != 0))
		abort();
	if (whole.d.octets < whole.out.len || (cap != 0 && whole.out.len > cap))
		abort();
	if (!whole.d.overflow && whole.d.octets != whole.out.len)
		abort();
	buf_release(&whole.out);
	buf_release(&split.out);

	round_trip(in, len, cut);
	return 0;
}
