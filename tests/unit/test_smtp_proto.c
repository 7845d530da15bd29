/*
 * test_smtp_proto.c: the SMTP wire format. Table-driven cases for line
 * framing, replies, commands and EHLO capabilities; the DATA decoder is fed
 * every input whole, then split at every point (and at every pair of points
 * for short inputs), and must give the same output and consumed counts each
 * time; the encoder and decoder are checked against each other on generated
 * inputs.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kumo.h"
#include "smtp_proto.h"
#include "unit.h"

/* Bytes with their length, so cases can hold NULs and CRLFs. */
#define B(s) s, sizeof(s) - 1

/* Show bytes with CR, LF and other controls escaped, for got/want messages. */
static const char *
esc(const char *p, size_t n, char *out, size_t outsz)
{
	size_t i, o = 0;

	for (i = 0; i < n && o + 5 < outsz; i++) {
		unsigned char c = (unsigned char)p[i];

		if (c == '\r')
			o += (size_t)snprintf(out + o, outsz - o, "\\r");
		else if (c == '\n')
			o += (size_t)snprintf(out + o, outsz - o, "\\n");
		else if (c < 32 || c > 126)
			o += (size_t)snprintf(out + o, outsz - o, "\\x%02x", c);
		else
			out[o++] = (char)c;
	}
	out[o] = '\0';
	return out;
}

/* ---- line framing ---- */

static void
test_line_next(void)
{
	static const struct {
		const char *in;
		size_t len, max;
		int want;
		size_t linelen, consumed;
	} rows[] = {
	    {B("HELO x\r\n"), 1000, 0, 6, 8},
	    {B("HELO x\n"), 1000, 0, 6, 7},
	    {B("\r\n"), 1000, 0, 0, 2},
	    {B("\n"), 1000, 0, 0, 1},
	    {B("a\rb\r\nrest"), 1000, 0, 3, 5},
	    {B("HELO x"), 1000, KUMO_EAGAIN, 0, 0},
	    {B("HELO x\r"), 1000, KUMO_EAGAIN, 0, 0},
	    {B(""), 1000, KUMO_EAGAIN, 0, 0},
	    {B("abcd\r\n"), 6, 0, 4, 6},
	    {B("abcde\r\n"), 6, KUMO_ETOOLONG, 0, 0},
	    {B("abcdef"), 6, KUMO_ETOOLONG, 0, 0},
	    {B("abcde"), 6, KUMO_EAGAIN, 0, 0},
	    {B("abcde\n"), 6, 0, 5, 6},
	    {B("x\0y\r\n"), 1000, 0, 3, 5},
	};
	size_t i;
	char what[64];

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		size_t linelen = 0, consumed = 0;
		int rc = smtp_line_next(rows[i].in, rows[i].len, rows[i].max, &linelen, &consumed);

		snprintf(what, sizeof(what), "line row %zu rc", i);
		UNIT_EXPECT_INT(what, rc, rows[i].want);
		if (rc != 0 || rows[i].want != 0)
			continue;
		snprintf(what, sizeof(what), "line row %zu linelen", i);
		UNIT_EXPECT_INT(what, linelen, rows[i].linelen);
		snprintf(what, sizeof(what), "line row %zu consumed", i);
		UNIT_EXPECT_INT(what, consumed, rows[i].consumed);
	}
}

/* The RFC 5321 limit: 998 octets + CRLF fits in SMTP_LINE_MAX, 999 + CRLF does not. */
static void
test_line_limit(void)
{
	char *big = xmalloc(SMTP_LINE_MAX + 10);
	size_t linelen = 0, consumed = 0;
	struct smtp_cmd cmd;

	memset(big, 'a', SMTP_LINE_MAX + 10);
	memcpy(big + 998, "\r\n", 2);
	UNIT_EXPECT_INT("998+CRLF", smtp_line_next(big, 1000, SMTP_LINE_MAX, &linelen, &consumed),
	                0);
	UNIT_EXPECT_INT("998+CRLF linelen", linelen, 998);
	memset(big, 'a', SMTP_LINE_MAX + 10);
	memcpy(big + 999, "\r\n", 2);
	UNIT_EXPECT_INT("999+CRLF", smtp_line_next(big, 1001, SMTP_LINE_MAX, &linelen, &consumed),
	                KUMO_ETOOLONG);
	memset(big, 'a', SMTP_LINE_MAX + 10);
	UNIT_EXPECT_INT("1000 no LF", smtp_line_next(big, 1000, SMTP_LINE_MAX, &linelen, &consumed),
	                KUMO_ETOOLONG);
	UNIT_EXPECT_INT("999 no LF", smtp_line_next(big, 999, SMTP_LINE_MAX, &linelen, &consumed),
	                KUMO_EAGAIN);
	/* The command parser refuses a 1000-octet line on its own, too. */
	memcpy(big, "NOOP ", 5);
	UNIT_EXPECT_INT("cmd 1000", smtp_cmd_parse(big, SMTP_LINE_MAX, &cmd), KUMO_ETOOLONG);
	UNIT_EXPECT_INT("cmd 999", smtp_cmd_parse(big, SMTP_LINE_MAX - 1, &cmd), 0);
	UNIT_EXPECT_INT("cmd 999 verb", cmd.verb, SMTP_VERB_NOOP);
	free(big);
}

/* ---- replies ---- */

static void
test_reply_table(void)
{
	static const struct {
		const char *in;
		size_t len;
		int want;
		int code;
		const char *enhanced, *text;
		int nlines;
		size_t consumed;
	} rows[] = {
	    {B("220 mx.example.test ESMTP\r\n"), 0, 220, "", "mx.example.test ESMTP", 1, 27},
	    {B("250 2.1.0 Ok\r\n"), 0, 250, "2.1.0", "Ok", 1, 14},
	    {B("550 5.1.1 <a@b>: unknown\r\n"), 0, 550, "5.1.1", "<a@b>: unknown", 1, 26},
	    {B("451 4.7.1 Try later\n"), 0, 451, "4.7.1", "Try later", 1, 20},
	    {B("250 2.0.0\r\n"), 0, 250, "2.0.0", "", 1, 11},
	    {B("250\r\n"), 0, 250, "", "", 1, 5},
	    {B("250 \r\n"), 0, 250, "", "", 1, 6},
	    {B("552 5.3.4 too big\r\nMAIL"), 0, 552, "5.3.4", "too big", 1, 19},
	    /* class mismatch or malformed: not an enhanced code, text kept as sent */
	    {B("550 4.1.1 odd\r\n"), 0, 550, "", "4.1.1 odd", 1, 15},
	    {B("250 2.0 Ok\r\n"), 0, 250, "", "2.0 Ok", 1, 12},
	    {B("250 2.0.0Ok\r\n"), 0, 250, "", "2.0.0Ok", 1, 13},
	    {B("250 2.1000.0 x\r\n"), 0, 250, "", "2.1000.0 x", 1, 16},
	    {B("250 2..0 x\r\n"), 0, 250, "", "2..0 x", 1, 12},
	    {B("250 3.0.0 x\r\n"), 0, 250, "", "3.0.0 x", 1, 13},
	    {B("250 2.999.999 x\r\n"), 0, 250, "2.999.999", "x", 1, 17},
	    /* multi-line */
	    {B("250-mx.example.test\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"), 0, 250, "",
	     "mx.example.test\nPIPELINING\nSIZE 1000", 3, 52},
	    {B("550-5.7.1 first\r\n550-5.7.1 second\r\n550 5.7.1 third\r\n"), 0, 550, "5.7.1",
	     "first\nsecond\nthird", 3, 52},
	    /* not every line carries one: none stripped */
	    {B("550-5.7.1 first\r\n550 plain\r\n"), 0, 550, "", "5.7.1 first\nplain", 2, 28},
	    {B("250-\r\n250 x\r\n"), 0, 250, "", "\nx", 2, 13},
	    {B("250-a\n250 b\n221 bye\r\n"), 0, 250, "", "a\nb", 2, 12},
	    /* incomplete */
	    {B(""), KUMO_EAGAIN, 0, NULL, NULL, 0, 0},
	    {B("250 Ok"), KUMO_EAGAIN, 0, NULL, NULL, 0, 0},
	    {B("250-a\r\n"), KUMO_EAGAIN, 0, NULL, NULL, 0, 0},
	    {B("250-a\r\n250 b"), KUMO_EAGAIN, 0, NULL, NULL, 0, 0},
	    /* malformed */
	    {B("25 Ok\r\n"), KUMO_EPARSE, 0, NULL, NULL, 0, 0},
	    {B("2500 Ok\r\n"), KUMO_EPARSE, 0, NULL, NULL, 0, 0},
	    {B("abc Ok\r\n"), KUMO_EPARSE, 0, NULL, NULL, 0, 0},
	    {B("199 Ok\r\n"), KUMO_EPARSE, 0, NULL, NULL, 0, 0},
	    {B("600 Ok\r\n"), KUMO_EPARSE, 0, NULL, NULL, 0, 0},
	    {B("099 Ok\r\n"), KUMO_EPARSE, 0, NULL, NULL, 0, 0},
	    {B("250\tOk\r\n"), KUMO_EPARSE, 0, NULL, NULL, 0, 0},
	    {B("\r\n"), KUMO_EPARSE, 0, NULL, NULL, 0, 0},
	    {B("250-a\r\n251 b\r\n"), KUMO_EPARSE, 0, NULL, NULL, 0, 0},
	    {B("250-a\r\nxyz\r\n"), KUMO_EPARSE, 0, NULL, NULL, 0, 0},
	    /* a bad continuation is reported even before the last line arrives */
	    {B("250-a\r\n550-b\r\n250"), KUMO_EPARSE, 0, NULL, NULL, 0, 0},
	    {B("-250 a\r\n"), KUMO_EPARSE, 0, NULL, NULL, 0, 0},
	};
	size_t i;
	char what[64];
	struct smtp_reply r;

	smtp_reply_init(&r);
	for (i = 0; i < KUMO_NELEM(rows); i++) {
		size_t consumed = 0;
		int rc = smtp_reply_parse(rows[i].in, rows[i].len, &r, &consumed);

		snprintf(what, sizeof(what), "reply row %zu rc", i);
		UNIT_EXPECT_INT(what, rc, rows[i].want);
		if (rc != 0 || rows[i].want != 0)
			continue;
		snprintf(what, sizeof(what), "reply row %zu code", i);
		UNIT_EXPECT_INT(what, r.code, rows[i].code);
		snprintf(what, sizeof(what), "reply row %zu class", i);
		UNIT_EXPECT_INT(what, smtp_reply_class(&r), rows[i].code / 100);
		snprintf(what, sizeof(what), "reply row %zu enhanced", i);
		UNIT_EXPECT_STR(what, r.enhanced, rows[i].enhanced);
		snprintf(what, sizeof(what), "reply row %zu text", i);
		UNIT_EXPECT_STR(what, r.text.data ? r.text.data : "", rows[i].text);
		snprintf(what, sizeof(what), "reply row %zu nlines", i);
		UNIT_EXPECT_INT(what, r.nlines, rows[i].nlines);
		snprintf(what, sizeof(what), "reply row %zu consumed", i);
		UNIT_EXPECT_INT(what, consumed, rows[i].consumed);
	}
	smtp_reply_release(&r);
}

/* Every strict prefix of a complete reply asks for more; the whole parses. */
static void
test_reply_prefixes(void)
{
	static const char in[] = "250-mx.example.test\r\n250-8BITMIME\r\n250 2.0.0 DSN\r\n";
	size_t n, consumed, bad = 0;
	struct smtp_reply r;

	smtp_reply_init(&r);
	for (n = 0; n < sizeof(in) - 1; n++)
		if (smtp_reply_parse(in, n, &r, &consumed) != KUMO_EAGAIN) {
			fprintf(stderr, "  prefix %zu: not EAGAIN\n", n);
			bad++;
		}
	UNIT_EXPECT_INT("prefixes not EAGAIN", bad, 0);
	UNIT_EXPECT_INT("whole", smtp_reply_parse(in, sizeof(in) - 1, &r, &consumed), 0);
	UNIT_EXPECT_INT("whole consumed", consumed, sizeof(in) - 1);
	smtp_reply_release(&r);
}

/* Line count and line length caps. */
static void
test_reply_limits(void)
{
	struct buf in;
	struct smtp_reply r;
	size_t consumed;
	int i;

	buf_init(&in, 0);
	smtp_reply_init(&r);
	for (i = 0; i < SMTP_REPLY_LINES_MAX - 1; i++)
		buf_puts(&in, "250-x\r\n");
	buf_puts(&in, "250 last\r\n");
	UNIT_EXPECT_INT("100 lines", smtp_reply_parse(in.data, in.len, &r, &consumed), 0);
	UNIT_EXPECT_INT("100 lines nlines", r.nlines, SMTP_REPLY_LINES_MAX);
	buf_reset(&in);
	for (i = 0; i < SMTP_REPLY_LINES_MAX; i++)
		buf_puts(&in, "250-x\r\n");
	buf_puts(&in, "250 last\r\n");
	UNIT_EXPECT_INT("101 lines", smtp_reply_parse(in.data, in.len, &r, &consumed), KUMO_EPARSE);
	buf_reset(&in);
	buf_puts(&in, "250 ");
	for (i = 0; i < SMTP_LINE_MAX; i++)
		buf_putc(&in, 'x');
	UNIT_EXPECT_INT("long line", smtp_reply_parse(in.data, in.len, &r, &consumed),
	                KUMO_ETOOLONG);
	buf_release(&in);
	smtp_reply_release(&r);
}

/* ---- commands ---- */

static void
test_cmd_table(void)
{
	/* For MAIL and RCPT, parsing ends arg at the path's '>' (see smtp_proto.h). */
	static const struct {
		const char *line;
		int want;
		enum smtp_verb verb;
		const char *arg, *path;
		int nparams;
		const char *params; /* "K=V K2 ..." as parsed, "" for none */
		uint64_t chunk;
		int last;
	} rows[] = {
	    {"HELO client.test", 0, SMTP_VERB_HELO, "client.test", "", 0, "", 0, 0},
	    {"ehlo client.test", 0, SMTP_VERB_EHLO, "client.test", "", 0, "", 0, 0},
	    {"EhLo   client.test  ", 0, SMTP_VERB_EHLO, "client.test", "", 0, "", 0, 0},
	    {"LHLO x", 0, SMTP_VERB_LHLO, "x", "", 0, "", 0, 0},
	    {"EHLO", KUMO_EPARSE, SMTP_VERB_EHLO, "", "", 0, "", 0, 0},
	    {"MAIL FROM:<>", 0, SMTP_VERB_MAIL, "FROM:<", "", 0, "", 0, 0},
	    {"mail from:<a@b.test>", 0, SMTP_VERB_MAIL, "from:<a@b.test", "a@b.test", 0, "", 0, 0},
	    {"MAIL FROM: <a@b>", 0, SMTP_VERB_MAIL, "FROM: <a@b", "a@b", 0, "", 0, 0},
	    {"MAIL FROM:<> SIZE=123 BODY=8BITMIME SMTPUTF8", 0, SMTP_VERB_MAIL, "FROM:<", "", 3,
	     "SIZE=123 BODY=8BITMIME SMTPUTF8", 0, 0},
	    {"MAIL FROM:<a@b>  SIZE=1   RET=HDRS ", 0, SMTP_VERB_MAIL, "FROM:<a@b", "a@b", 2,
	     "SIZE=1 RET=HDRS", 0, 0},
	    {"MAIL FROM:<\"a b>c\"@d>", 0, SMTP_VERB_MAIL, "FROM:<\"a b>c\"@d", "\"a b>c\"@d", 0,
	     "", 0, 0},
	    {"MAIL FROM:<@r1,@r2:u@d>", 0, SMTP_VERB_MAIL, "FROM:<@r1,@r2:u@d", "u@d", 0, "", 0, 0},
	    {"MAIL FROM:<a@b> ENVID=x+3Dy", 0, SMTP_VERB_MAIL, "FROM:<a@b", "a@b", 1, "ENVID=x+3Dy",
	     0, 0},
	    {"RCPT TO:<u@d.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@d.test", 0, SMTP_VERB_RCPT,
	     "TO:<u@d.test", "u@d.test", 2, "NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;u@d.test", 0, 0},
	    {"rcpt to: <Postmaster>", 0, SMTP_VERB_RCPT, "to: <Postmaster", "Postmaster", 0, "", 0,
	     0},
	    {"MAIL FROM:a@b", KUMO_EPARSE, SMTP_VERB_MAIL, NULL, NULL, 0, NULL, 0, 0},
	    {"MAIL FROM:<a@b", KUMO_EPARSE, SMTP_VERB_MAIL, NULL, NULL, 0, NULL, 0, 0},
	    {"MAIL FROM:<<a@b>>", KUMO_EPARSE, SMTP_VERB_MAIL, NULL, NULL, 0, NULL, 0, 0},
	    {"MAIL FROM:<a@b>SIZE=1", KUMO_EPARSE, SMTP_VERB_MAIL, NULL, NULL, 0, NULL, 0, 0},
	    {"MAIL FROM:<a b@c>", KUMO_EPARSE, SMTP_VERB_MAIL, NULL, NULL, 0, NULL, 0, 0},
	    {"MAIL TO:<a@b>", KUMO_EPARSE, SMTP_VERB_MAIL, NULL, NULL, 0, NULL, 0, 0},
	    {"MAIL", KUMO_EPARSE, SMTP_VERB_MAIL, NULL, NULL, 0, NULL, 0, 0},
	    {"MAIL FROM:<> SIZE=", KUMO_EPARSE, SMTP_VERB_MAIL, NULL, NULL, 0, NULL, 0, 0},
	    {"MAIL FROM:<> =1", KUMO_EPARSE, SMTP_VERB_MAIL, NULL, NULL, 0, NULL, 0, 0},
	    {"MAIL FROM:<> -X=1", KUMO_EPARSE, SMTP_VERB_MAIL, NULL, NULL, 0, NULL, 0, 0},
	    {"MAIL FROM:<> S_Z=1", KUMO_EPARSE, SMTP_VERB_MAIL, NULL, NULL, 0, NULL, 0, 0},
	    {"MAIL FROM:<@r1>", KUMO_EPARSE, SMTP_VERB_MAIL, NULL, NULL, 0, NULL, 0, 0},
	    {"MAIL FROM:<> A B C D E F G H I J K L M N O P", 0, SMTP_VERB_MAIL, NULL, "", 16, NULL,
	     0, 0},
	    {"MAIL FROM:<> A B C D E F G H I J K L M N O P Q", KUMO_EPARSE, SMTP_VERB_MAIL, NULL,
	     NULL, 0, NULL, 0, 0},
	    {"RCPT TO:<>", KUMO_EPARSE, SMTP_VERB_RCPT, NULL, NULL, 0, NULL, 0, 0},
	    {"RCPT FROM:<a@b>", KUMO_EPARSE, SMTP_VERB_RCPT, NULL, NULL, 0, NULL, 0, 0},
	    {"DATA", 0, SMTP_VERB_DATA, "", "", 0, "", 0, 0},
	    {"data ", 0, SMTP_VERB_DATA, "", "", 0, "", 0, 0},
	    {"DATA now", KUMO_EPARSE, SMTP_VERB_DATA, NULL, NULL, 0, NULL, 0, 0},
	    {"BDAT 100", 0, SMTP_VERB_BDAT, "100", "", 0, "", 100, 0},
	    {"bdat 0 last", 0, SMTP_VERB_BDAT, "0 last", "", 0, "", 0, 1},
	    {"BDAT 18446744073709551615 LAST", 0, SMTP_VERB_BDAT, "18446744073709551615 LAST", "",
	     0, "", UINT64_MAX, 1},
	    {"BDAT 18446744073709551616", KUMO_EPARSE, SMTP_VERB_BDAT, NULL, NULL, 0, NULL, 0, 0},
	    {"BDAT", KUMO_EPARSE, SMTP_VERB_BDAT, NULL, NULL, 0, NULL, 0, 0},
	    {"BDAT x", KUMO_EPARSE, SMTP_VERB_BDAT, NULL, NULL, 0, NULL, 0, 0},
	    {"BDAT -1", KUMO_EPARSE, SMTP_VERB_BDAT, NULL, NULL, 0, NULL, 0, 0},
	    {"BDAT 10 FIRST", KUMO_EPARSE, SMTP_VERB_BDAT, NULL, NULL, 0, NULL, 0, 0},
	    {"BDAT 10 LAST x", KUMO_EPARSE, SMTP_VERB_BDAT, NULL, NULL, 0, NULL, 0, 0},
	    {"BDAT 10x", KUMO_EPARSE, SMTP_VERB_BDAT, NULL, NULL, 0, NULL, 0, 0},
	    {"RSET", 0, SMTP_VERB_RSET, "", "", 0, "", 0, 0},
	    {"NOOP anything at all", 0, SMTP_VERB_NOOP, "anything at all", "", 0, "", 0, 0},
	    {"VRFY user", 0, SMTP_VERB_VRFY, "user", "", 0, "", 0, 0},
	    {"EXPN list", 0, SMTP_VERB_EXPN, "list", "", 0, "", 0, 0},
	    {"HELP", 0, SMTP_VERB_HELP, "", "", 0, "", 0, 0},
	    {"quit", 0, SMTP_VERB_QUIT, "", "", 0, "", 0, 0},
	    {"STARTTLS", 0, SMTP_VERB_STARTTLS, "", "", 0, "", 0, 0},
	    {"STARTTLS x", KUMO_EPARSE, SMTP_VERB_STARTTLS, NULL, NULL, 0, NULL, 0, 0},
	    {"AUTH PLAIN AGFAAGI=", 0, SMTP_VERB_AUTH, "PLAIN AGFAAGI=", "", 0, "", 0, 0},
	    {"AUTH", KUMO_EPARSE, SMTP_VERB_AUTH, NULL, NULL, 0, NULL, 0, 0},
	    {"XCLIENT ADDR=1.2.3.4", 0, SMTP_VERB_UNKNOWN, "ADDR=1.2.3.4", "", 0, "", 0, 0},
	    {"MAILFROM:<a@b>", 0, SMTP_VERB_UNKNOWN, "", "", 0, "", 0, 0},
	    {"", 0, SMTP_VERB_UNKNOWN, "", "", 0, "", 0, 0},
	    {"   ", 0, SMTP_VERB_UNKNOWN, "", "", 0, "", 0, 0},
	    {"QUI", 0, SMTP_VERB_UNKNOWN, "", "", 0, "", 0, 0},
	    {"QUITS", 0, SMTP_VERB_UNKNOWN, "", "", 0, "", 0, 0},
	};
	size_t i;
	char what[80], line[SMTP_LINE_MAX + 1];

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct smtp_cmd cmd;
		struct buf got;
		int rc, k;
		size_t len = strlen(rows[i].line);

		memcpy(line, rows[i].line, len + 1);
		line[len] = '\r'; /* what smtp_line_next leaves there */
		rc = smtp_cmd_parse(line, len, &cmd);
		snprintf(what, sizeof(what), "cmd \"%s\" rc", rows[i].line);
		UNIT_EXPECT_INT(what, rc, rows[i].want);
		snprintf(what, sizeof(what), "cmd \"%s\" verb", rows[i].line);
		UNIT_EXPECT_STR(what, smtp_verb_str(cmd.verb), smtp_verb_str(rows[i].verb));
		if (rc != 0 || rows[i].want != 0)
			continue;
		if (rows[i].arg != NULL) {
			snprintf(what, sizeof(what), "cmd \"%s\" arg", rows[i].line);
			UNIT_EXPECT_STR(what, cmd.arg, rows[i].arg);
		}
		snprintf(what, sizeof(what), "cmd \"%s\" path", rows[i].line);
		UNIT_EXPECT_STR(what, cmd.path, rows[i].path);
		snprintf(what, sizeof(what), "cmd \"%s\" nparams", rows[i].line);
		UNIT_EXPECT_INT(what, cmd.nparams, rows[i].nparams);
		if (rows[i].params != NULL) {
			buf_init(&got, 0);
			buf_puts(&got, "");
			for (k = 0; k < cmd.nparams; k++) {
				if (k > 0)
					buf_putc(&got, ' ');
				buf_puts(&got, cmd.params[k].key);
				if (cmd.params[k].value != NULL)
					buf_appendf(&got, "=%s", cmd.params[k].value);
			}
			snprintf(what, sizeof(what), "cmd \"%s\" params", rows[i].line);
			UNIT_EXPECT_STR(what, got.data, rows[i].params);
			buf_release(&got);
		}
		snprintf(what, sizeof(what), "cmd \"%s\" chunk", rows[i].line);
		CU_ASSERT_TRUE(cmd.chunk_size == rows[i].chunk);
		if (cmd.chunk_size != rows[i].chunk)
			fprintf(stderr, "  %s: got %llu, want %llu\n", what,
			        (unsigned long long)cmd.chunk_size,
			        (unsigned long long)rows[i].chunk);
		snprintf(what, sizeof(what), "cmd \"%s\" last", rows[i].line);
		UNIT_EXPECT_INT(what, cmd.last_chunk, rows[i].last);
	}
}

static void
test_cmd_param_lookup(void)
{
	char line[] = "MAIL FROM:<a@b> size=123 BODY=8BITMIME SMTPUTF8\r";
	struct smtp_cmd cmd;
	const struct smtp_param *p;

	UNIT_EXPECT_INT("parse", smtp_cmd_parse(line, strlen(line) - 1, &cmd), 0);
	p = smtp_cmd_param(&cmd, "SIZE");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	UNIT_EXPECT_STR("SIZE", p->value, "123");
	p = smtp_cmd_param(&cmd, "body");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	UNIT_EXPECT_STR("BODY", p->value, "8BITMIME");
	p = smtp_cmd_param(&cmd, "SmtpUtf8");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	CU_ASSERT_PTR_NULL(p->value);
	CU_ASSERT_PTR_NULL(smtp_cmd_param(&cmd, "RET"));
}

/* A NUL inside the line is refused rather than silently cutting it. */
static void
test_cmd_nul(void)
{
	char line[] = "RCPT TO:<a@b>\0<c@d>\r";
	struct smtp_cmd cmd;

	UNIT_EXPECT_INT("NUL", smtp_cmd_parse(line, sizeof(line) - 2, &cmd), KUMO_EPARSE);
}

/* ---- EHLO capabilities ---- */

static void
test_caps_table(void)
{
	static const struct {
		const char *reply;
		unsigned flags;
		uint64_t size;
		unsigned auth;
	} rows[] = {
	    {"250-mx.test Hello\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n"
	     "250-AUTH PLAIN LOGIN\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n"
	     "250-ENHANCEDSTATUSCODES\r\n250 DSN\r\n",
	     SMTP_CAP_PIPELINING | SMTP_CAP_SIZE | SMTP_CAP_STARTTLS | SMTP_CAP_AUTH |
	         SMTP_CAP_8BITMIME | SMTP_CAP_SMTPUTF8 | SMTP_CAP_CHUNKING |
	         SMTP_CAP_ENHANCEDSTATUSCODES | SMTP_CAP_DSN,
	     10240000, SMTP_AUTH_PLAIN | SMTP_AUTH_LOGIN},
	    {"250-mx\r\n250-AUTH=PLAIN\r\n250 auth cram-md5 XOAUTH2 GSSAPI\r\n", SMTP_CAP_AUTH, 0,
	     SMTP_AUTH_PLAIN | SMTP_AUTH_CRAM_MD5 | SMTP_AUTH_XOAUTH2 | SMTP_AUTH_OTHER},
	    {"250-mx\r\n250-size\r\n250 pipelining\r\n", SMTP_CAP_SIZE | SMTP_CAP_PIPELINING, 0, 0},
	    {"250-mx\r\n250-SIZE 0\r\n250 BINARYMIME\r\n", SMTP_CAP_SIZE | SMTP_CAP_BINARYMIME, 0,
	     0},
	    {"250-mx\r\n250 SIZE 99999999999999999999999\r\n", SMTP_CAP_SIZE, 0, 0},
	    {"250-mx\r\n250 SIZE 12x\r\n", SMTP_CAP_SIZE, 0, 0},
	    /* the greeting line is not a capability; near-misses are not either */
	    {"250-PIPELINING\r\n250 STARTTLSX\r\n", 0, 0, 0},
	    {"250 mx.test\r\n", 0, 0, 0},
	    {"250-mx\r\n250-X-EXPS GSSAPI NTLM\r\n250 AUTH\r\n", SMTP_CAP_AUTH, 0, 0},
	    {"550 5.7.1 go away\r\n", 0, 0, 0},
	};
	size_t i;
	char what[64];
	struct smtp_reply r;

	smtp_reply_init(&r);
	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct smtp_caps caps;
		size_t consumed;

		snprintf(what, sizeof(what), "caps row %zu parse", i);
		UNIT_EXPECT_INT(
		    what, smtp_reply_parse(rows[i].reply, strlen(rows[i].reply), &r, &consumed), 0);
		smtp_caps_parse(&r, &caps);
		snprintf(what, sizeof(what), "caps row %zu flags", i);
		UNIT_EXPECT_INT(what, caps.flags, rows[i].flags);
		snprintf(what, sizeof(what), "caps row %zu size", i);
		UNIT_EXPECT_INT(what, caps.size_max, rows[i].size);
		snprintf(what, sizeof(what), "caps row %zu auth", i);
		UNIT_EXPECT_INT(what, caps.auth, rows[i].auth);
	}
	smtp_reply_release(&r);
}

/* ---- dot-stuffing: encoder ---- */

static void
test_encode_table(void)
{
	static const struct {
		const char *in;
		size_t len;
		const char *want;
		size_t wlen;
	} rows[] = {
	    {B(""), B(".\r\n")},
	    {B("a\r\n"), B("a\r\n.\r\n")},
	    {B("a"), B("a\r\n.\r\n")},
	    {B(".\r\n"), B("..\r\n.\r\n")},
	    {B("."), B("..\r\n.\r\n")},
	    {B("a\r\n.b\r\n..c\r\n"), B("a\r\n..b\r\n...c\r\n.\r\n")},
	    {B("a\n.b\n"), B("a\n.b\n\r\n.\r\n")},
	    {B("a\r.b"), B("a\r.b\r\n.\r\n")},
	    {B("a\r\r\n.b"), B("a\r\r\n..b\r\n.\r\n")},
	    {B("x.\r\n"), B("x.\r\n.\r\n")},
	};
	size_t i, j;
	char what[64], e1[128], e2[128];

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		/* whole, and fed one byte at a time: the same bytes */
		for (j = 0; j < 2; j++) {
			struct smtp_dot_enc e;
			struct buf out;
			size_t k;

			smtp_dot_enc_init(&e);
			buf_init(&out, 0);
			buf_puts(&out, "");
			if (j == 0) {
				CU_ASSERT_EQUAL(smtp_dot_encode(&e, &out, rows[i].in, rows[i].len),
				                0);
			} else {
				for (k = 0; k < rows[i].len; k++)
					CU_ASSERT_EQUAL(
					    smtp_dot_encode(&e, &out, rows[i].in + k, 1), 0);
			}
			CU_ASSERT_EQUAL(smtp_dot_encode_end(&e, &out), 0);
			snprintf(what, sizeof(what), "encode row %zu (%s)", i,
			         j ? "bytewise" : "whole");
			UNIT_EXPECT_STR(what, esc(out.data, out.len, e1, sizeof(e1)),
			                esc(rows[i].want, rows[i].wlen, e2, sizeof(e2)));
			buf_release(&out);
		}
	}
}

static void
test_encode_cap(void)
{
	struct smtp_dot_enc e;
	struct buf out;

	smtp_dot_enc_init(&e);
	buf_init(&out, 8);
	UNIT_EXPECT_INT("fits", smtp_dot_encode(&e, &out, B("abc\r\n")), 0);
	UNIT_EXPECT_INT("over", smtp_dot_encode(&e, &out, B(".xyz")), KUMO_ENOSPACE);
	buf_release(&out);
}

/* ---- dot-stuffing: decoder ---- */

struct dec_result {
	int rc;          /* 1 if the end was reached */
	size_t consumed; /* total bytes consumed up to the end (or all) */
	int overflow;
	uint64_t octets;
	struct buf out;
};

/*
 * Feed in[0..len) cut at the given points (sorted, each in 0..len), the way
 * a connection would: after the end is reached, stop feeding.
 */
static void
dec_feed(const char *in, size_t len, const size_t *cuts, size_t ncuts, size_t cap,
         struct dec_result *res)
{
	struct smtp_dot_dec d;
	size_t start = 0, k, consumed;

	smtp_dot_dec_init(&d);
	buf_init(&res->out, cap);
	buf_puts(&res->out, "");
	res->rc = 0;
	res->consumed = 0;
	for (k = 0; k <= ncuts && res->rc == 0; k++) {
		size_t stop = k < ncuts ? cuts[k] : len;

		res->rc = smtp_dot_decode(&d, in + start, stop - start, &res->out, &consumed);
		res->consumed += consumed;
		start = stop;
	}
	res->overflow = d.overflow;
	res->octets = d.octets;
}

static int
dec_same(const struct dec_result *a, const struct dec_result *b)
{
	return a->rc == b->rc && a->consumed == b->consumed && a->overflow == b->overflow &&
	       a->octets == b->octets && a->out.len == b->out.len &&
	       memcmp(a->out.data, b->out.data, a->out.len) == 0;
}

/*
 * Check one decoder case against the expected result, whole, at every split
 * point, at every pair of split points (inputs up to 64 bytes) and byte by
 * byte. Returns how many feedings disagreed with the whole one.
 */
static size_t
dec_check_all_splits(const char *name, const char *in, size_t len, size_t cap,
                     const struct dec_result *whole)
{
	struct dec_result res;
	size_t i, j, bad = 0, cuts[2], *bytes;

	for (i = 0; i <= len; i++) {
		cuts[0] = i;
		dec_feed(in, len, cuts, 1, cap, &res);
		if (!dec_same(&res, whole)) {
			if (bad++ < 3)
				fprintf(stderr, "  %s: split at %zu differs\n", name, i);
		}
		buf_release(&res.out);
		if (len > 64)
			continue;
		for (j = i; j <= len; j++) {
			cuts[1] = j;
			dec_feed(in, len, cuts, 2, cap, &res);
			if (!dec_same(&res, whole)) {
				if (bad++ < 3)
					fprintf(stderr, "  %s: splits at %zu,%zu differ\n", name, i,
					        j);
			}
			buf_release(&res.out);
		}
	}
	bytes = xcalloc(len + 1, sizeof(*bytes));
	for (i = 0; i < len; i++)
		bytes[i] = i + 1;
	dec_feed(in, len, bytes, len ? len - 1 : 0, cap, &res);
	if (!dec_same(&res, whole)) {
		bad++;
		fprintf(stderr, "  %s: byte by byte differs\n", name);
	}
	buf_release(&res.out);
	free(bytes);
	return bad;
}

static void
test_decode_splits(void)
{
	static const struct {
		const char *name;
		const char *in;
		size_t len;
		int rc;
		size_t consumed;
		const char *out;
		size_t olen;
	} rows[] = {
	    {"simple", B("Subject: x\r\n\r\nbody\r\n.\r\n"), 1, 23,
	     B("Subject: x\r\n\r\nbody\r\n")},
	    {"empty message", B(".\r\n"), 1, 3, B("")},
	    {"empty then pipelined", B(".\r\nQUIT\r\n"), 1, 3, B("")},
	    {"pipelined next command", B("a\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<x@y>\r\n"), 1, 6,
	     B("a\r\n")},
	    {"line that is just ..", B("a\r\n..\r\nb\r\n.\r\n"), 1, 13, B("a\r\n.\r\nb\r\n")},
	    {".. first", B("..\r\n.\r\n"), 1, 7, B(".\r\n")},
	    {"stuffed dots", B("..a\r\n...b\r\n.c\r\n.\r\n"), 1, 18, B(".a\r\n..b\r\nc\r\n")},
	    {"no end yet", B("abc\r\ndef"), 0, 8, B("abc\r\ndef")},
	    {"ends in CRLF only", B("abc\r\n"), 0, 5, B("abc\r\n")},
	    {"ends in CRLF.", B("abc\r\n."), 0, 6, B("abc\r\n")},
	    {"ends in CRLF.CR", B("abc\r\n.\r"), 0, 7, B("abc\r\n")},
	    {"bare LF dot bare LF is data", B("a\n.\nb\r\n.\r\n"), 1, 10, B("a\n.\nb\r\n")},
	    {"CRLF dot LF is data", B("a\r\n.\nb\r\n.\r\n"), 1, 11, B("a\r\n\nb\r\n")},
	    {"LF dot CRLF is data", B("a\n.\r\nb\r\n.\r\n"), 1, 11, B("a\n.\r\nb\r\n")},
	    {"CR dot CR is data", B("a\r.\rb\r\n.\r\n"), 1, 10, B("a\r.\rb\r\n")},
	    {"CRLF dot CR x", B("a\r\n.\rx\r\n.\r\n"), 1, 11, B("a\r\n\rx\r\n")},
	    {"CRLF dot CR CR LF", B("a\r\n.\r\r\n.\r\n"), 1, 10, B("a\r\n\r\r\n")},
	    {"bare LF only", B("\n.\n"), 0, 3, B("\n.\n")},
	    {"CR CR LF dot CRLF", B("a\r\r\n.\r\n"), 1, 7, B("a\r\r\n")},
	    {"dot inside line", B("a.b\r\nc.\r\n.\r\n"), 1, 12, B("a.b\r\nc.\r\n")},
	    {"NUL and 8-bit", B("\0\xff\r\n.\r\n"), 1, 7, B("\0\xff\r\n")},
	    {"terminator twice", B("x\r\n.\r\n.\r\n"), 1, 6, B("x\r\n")},
	    {"empty input", B(""), 0, 0, B("")},
	    {"just dot", B("."), 0, 1, B("")},
	};
	size_t i;
	char what[96], e1[256], e2[256];

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct dec_result whole;

		dec_feed(rows[i].in, rows[i].len, NULL, 0, 0, &whole);
		snprintf(what, sizeof(what), "decode \"%s\" rc", rows[i].name);
		UNIT_EXPECT_INT(what, whole.rc, rows[i].rc);
		snprintf(what, sizeof(what), "decode \"%s\" consumed", rows[i].name);
		UNIT_EXPECT_INT(what, whole.consumed, rows[i].consumed);
		snprintf(what, sizeof(what), "decode \"%s\" out", rows[i].name);
		UNIT_EXPECT_STR(what, esc(whole.out.data, whole.out.len, e1, sizeof(e1)),
		                esc(rows[i].out, rows[i].olen, e2, sizeof(e2)));
		snprintf(what, sizeof(what), "decode \"%s\" octets", rows[i].name);
		UNIT_EXPECT_INT(what, whole.octets, rows[i].olen);
		snprintf(what, sizeof(what), "decode \"%s\" splits differing", rows[i].name);
		UNIT_EXPECT_INT(
		    what, dec_check_all_splits(rows[i].name, rows[i].in, rows[i].len, 0, &whole),
		    0);
		buf_release(&whole.out);
	}
}

/* A call after the end consumes nothing and still says "ended". */
static void
test_decode_after_end(void)
{
	struct smtp_dot_dec d;
	size_t consumed = 99;

	smtp_dot_dec_init(&d);
	UNIT_EXPECT_INT("end", smtp_dot_decode(&d, B(".\r\nQUIT\r\n"), NULL, &consumed), 1);
	UNIT_EXPECT_INT("end consumed", consumed, 3);
	UNIT_EXPECT_INT("again", smtp_dot_decode(&d, B("QUIT\r\n"), NULL, &consumed), 1);
	UNIT_EXPECT_INT("again consumed", consumed, 0);
	UNIT_EXPECT_INT("octets", d.octets, 0);
}

/* The cap: output filled to exactly the cap, overflow set, the end still found, at every split. */
static void
test_decode_cap(void)
{
	static const char in[] = "0123456789\r\n..abc\r\n.\r\nNOOP\r\n";
	static const struct {
		size_t cap;
		int overflow;
		const char *out;
	} rows[] = {
	    {1, 1, "0"},
	    {5, 1, "01234"},
	    {12, 1, "0123456789\r\n"},
	    {13, 1, "0123456789\r\n."},
	    {17, 1, "0123456789\r\n.abc\r"},
	    {18, 0, "0123456789\r\n.abc\r\n"},
	    {100, 0, "0123456789\r\n.abc\r\n"},
	};
	size_t i;
	char what[64], e1[64], e2[64];

	for (i = 0; i < KUMO_NELEM(rows); i++) {
		struct dec_result whole;

		dec_feed(in, sizeof(in) - 1, NULL, 0, rows[i].cap, &whole);
		snprintf(what, sizeof(what), "cap %zu rc", rows[i].cap);
		UNIT_EXPECT_INT(what, whole.rc, 1);
		snprintf(what, sizeof(what), "cap %zu consumed", rows[i].cap);
		UNIT_EXPECT_INT(what, whole.consumed, 22);
		snprintf(what, sizeof(what), "cap %zu overflow", rows[i].cap);
		UNIT_EXPECT_INT(what, whole.overflow, rows[i].overflow);
		snprintf(what, sizeof(what), "cap %zu octets", rows[i].cap);
		UNIT_EXPECT_INT(what, whole.octets, 18);
		snprintf(what, sizeof(what), "cap %zu out", rows[i].cap);
		UNIT_EXPECT_STR(what, esc(whole.out.data, whole.out.len, e1, sizeof(e1)),
		                esc(rows[i].out, strlen(rows[i].out), e2, sizeof(e2)));
		snprintf(what, sizeof(what), "cap %zu splits differing", rows[i].cap);
		UNIT_EXPECT_INT(
		    what, dec_check_all_splits(what, in, sizeof(in) - 1, rows[i].cap, &whole), 0);
		buf_release(&whole.out);
	}
}

/* out == NULL only counts. */
static void
test_decode_count_only(void)
{
	struct smtp_dot_dec d;
	size_t consumed;

	smtp_dot_dec_init(&d);
	UNIT_EXPECT_INT("rc", smtp_dot_decode(&d, B("ab\r\n..c\r\n.\r\n"), NULL, &consumed), 1);
	UNIT_EXPECT_INT("octets", d.octets, 8);
	UNIT_EXPECT_INT("consumed", consumed, 12);
	UNIT_EXPECT_INT("overflow", d.overflow, 0);
}

/* A small deterministic generator (xorshift), so failures reproduce. */
static uint32_t
rnd(uint32_t *s)
{
	uint32_t x = *s;

	x ^= x << 13;
	x ^= x >> 17;
	x ^= x << 5;
	return *s = x;
}

/* Encode in random pieces, decode in random pieces: the input comes back. */
static void
test_round_trip(void)
{
	static const char alphabet[] = ".\r\n.a\r\nb\0";
	uint32_t seed = 0x1234567;
	size_t iter, bad = 0, split_bad = 0;

	for (iter = 0; iter < 3000; iter++) {
		size_t len = rnd(&seed) % 80, i, pos, consumed, cut;
		char *x = xmalloc(len + 1);
		struct smtp_dot_enc e;
		struct smtp_dot_dec d;
		struct buf enc, dec, want;
		int rc = 0;

		for (i = 0; i < len; i++)
			x[i] = alphabet[rnd(&seed) % (sizeof(alphabet) - 1)];
		buf_init(&enc, 0);
		buf_init(&dec, 0);
		buf_init(&want, 0);
		buf_puts(&dec, "");
		smtp_dot_enc_init(&e);
		for (pos = 0; pos < len; pos += cut) {
			cut = 1 + rnd(&seed) % 7;
			if (cut > len - pos)
				cut = len - pos;
			smtp_dot_encode(&e, &enc, x + pos, cut);
		}
		smtp_dot_encode_end(&e, &enc);
		buf_puts(&enc, "NEXT\r\n");

		buf_append(&want, x, len);
		if (len > 0 && !(len >= 2 && x[len - 2] == '\r' && x[len - 1] == '\n'))
			buf_puts(&want, "\r\n");
		buf_puts(&want, "");

		smtp_dot_dec_init(&d);
		for (pos = 0; pos < enc.len && rc == 0; pos += consumed) {
			cut = 1 + rnd(&seed) % 9;
			if (cut > enc.len - pos)
				cut = enc.len - pos;
			rc = smtp_dot_decode(&d, enc.data + pos, cut, &dec, &consumed);
		}
		if (rc != 1 || pos != enc.len - 6 || dec.len != want.len ||
		    memcmp(dec.data, want.data, want.len) != 0) {
			if (bad++ < 3) {
				char e1[512], e2[512];

				fprintf(
				    stderr,
				    "  round trip %zu: rc %d end %zu/%zu got \"%s\" want \"%s\"\n",
				    iter, rc, pos, enc.len - 6,
				    esc(dec.data, dec.len, e1, sizeof(e1)),
				    esc(want.data, want.len, e2, sizeof(e2)));
			}
		}
		/* and the encoded stream obeys split invariance at every point */
		if (iter % 10 == 0) {
			struct dec_result whole;

			dec_feed(enc.data, enc.len, NULL, 0, 0, &whole);
			split_bad +=
			    dec_check_all_splits("round trip", enc.data, enc.len, 0, &whole);
			buf_release(&whole.out);
		}
		buf_release(&enc);
		buf_release(&dec);
		buf_release(&want);
		free(x);
	}
	UNIT_EXPECT_INT("round trips failing", bad, 0);
	UNIT_EXPECT_INT("round trip splits differing", split_bad, 0);
}

/* Big runs go through in few appends: a 100 KB message decodes correctly in 4 KB reads. */
static void
test_decode_large(void)
{
	struct buf msg, out;
	struct smtp_dot_dec d;
	size_t pos, consumed, n;
	int rc = 0, i;

	buf_init(&msg, 0);
	buf_init(&out, 0);
	for (i = 0; msg.len < 100 * 1024; i++)
		buf_appendf(&msg, "%sline %d of a largish message, some text to fill it up\r\n",
		            i % 50 == 0 ? "." : "", i);
	n = msg.len;
	buf_puts(&msg, ".\r\n");
	smtp_dot_dec_init(&d);
	for (pos = 0; pos < msg.len && rc == 0; pos += consumed) {
		size_t cut = msg.len - pos < 4096 ? msg.len - pos : 4096;

		rc = smtp_dot_decode(&d, msg.data + pos, cut, &out, &consumed);
	}
	UNIT_EXPECT_INT("large rc", rc, 1);
	UNIT_EXPECT_INT("large consumed", pos, msg.len);
	/* one dot removed for each stuffed line */
	UNIT_EXPECT_INT("large out", out.len, n - (size_t)((i + 49) / 50));
	buf_release(&msg);
	buf_release(&out);
}

int
main(void)
{
	static const struct unit_test tests[] = {
	    {"line_next", test_line_next},
	    {"line_limit", test_line_limit},
	    {"reply_table", test_reply_table},
	    {"reply_prefixes", test_reply_prefixes},
	    {"reply_limits", test_reply_limits},
	    {"cmd_table", test_cmd_table},
	    {"cmd_param_lookup", test_cmd_param_lookup},
	    {"cmd_nul", test_cmd_nul},
	    {"caps_table", test_caps_table},
	    {"encode_table", test_encode_table},
	    {"encode_cap", test_encode_cap},
	    {"decode_splits", test_decode_splits},
	    {"decode_after_end", test_decode_after_end},
	    {"decode_cap", test_decode_cap},
	    {"decode_count_only", test_decode_count_only},
	    {"round_trip", test_round_trip},
	    {"decode_large", test_decode_large},
	    {NULL, NULL},
	};

	return unit_run("smtp_proto", tests);
}
