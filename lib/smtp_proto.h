/*
 * smtp_proto.h: the SMTP wire format, both directions, with no I/O.
 *
 *  - line framing with the RFC 5321 length limit,
 *  - reply parsing (single and multi-line, enhanced status codes),
 *  - server-side command parsing (verbs, MAIL/RCPT paths and parameters),
 *  - EHLO capability parsing,
 *  - dot-stuffing: a streaming encoder and a streaming end-of-data decoder.
 *
 * Everything here is fed bytes a peer chose, so every function is total:
 * malformed input gives KUMO_EPARSE or KUMO_ETOOLONG, never a crash, and
 * each parser has a libFuzzer harness under tests/fuzz/.
 */
#ifndef KUMO_SMTP_PROTO_H
#define KUMO_SMTP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* RFC 5321 4.5.3.1.4-6: command line 512, text line 1000, reply line 512 (CRLF included). */
#define SMTP_LINE_MAX 1000
#define SMTP_REPLY_LINES_MAX 100

/*
 * Find the next line in data[0..len). On success returns 0, sets *linelen
 * to the line's length without its terminator (CRLF, or a bare LF which is
 * tolerated) and *consumed to the length with it. KUMO_EAGAIN: no complete
 * line yet (and fewer than max bytes seen). KUMO_ETOOLONG: no terminator in
 * the first max bytes (max counts the CRLF, as RFC 5321 does; 0 means
 * SMTP_LINE_MAX). Scans with memchr, so a long feed costs one pass.
 */
int smtp_line_next(const char *data, size_t len, size_t max, size_t *linelen, size_t *consumed);

/* ---- replies (client side) ---- */

/*
 * An enhanced status code (RFC 2034/3463) is recognised only when well formed
 * ("X.Y.Z", Y and Z 1-3 digits, followed by a space or the end of the line)
 * and its class X equals the reply code's first digit; anything else (a
 * "550 4.1.1", a "250 2.0") is left in the text as it came and enhanced is "".
 */
struct smtp_reply {
	int code;          /* 200..599 */
	char enhanced[16]; /* the first line's "5.1.1" when every line carried one, else "" */
	struct buf text;   /* the lines' texts without "NNN-" / enhanced code, joined by '\n' */
	int nlines;
};

void smtp_reply_init(struct smtp_reply *r);
void smtp_reply_release(struct smtp_reply *r);
/*
 * Parse one complete reply from the front of data[0..len). 0 on success
 * with *consumed set; KUMO_EAGAIN when the last line of the reply has not
 * arrived; KUMO_EPARSE for a bad line (not 3 digits then ' ' or '-', a code
 * outside 200..599, continuation lines whose codes differ, more than
 * SMTP_REPLY_LINES_MAX lines); KUMO_ETOOLONG for a line over SMTP_LINE_MAX.
 */
int smtp_reply_parse(const char *data, size_t len, struct smtp_reply *r, size_t *consumed);
/* Is this a positive completion (2xx), transient (4xx) or permanent (5xx)? */
#define smtp_reply_class(r) ((r)->code / 100)

/* ---- commands (server side) ---- */

enum smtp_verb {
	SMTP_VERB_UNKNOWN = 0,
	SMTP_VERB_HELO,
	SMTP_VERB_EHLO,
	SMTP_VERB_LHLO,
	SMTP_VERB_MAIL,
	SMTP_VERB_RCPT,
	SMTP_VERB_DATA,
	SMTP_VERB_BDAT,
	SMTP_VERB_RSET,
	SMTP_VERB_NOOP,
	SMTP_VERB_VRFY,
	SMTP_VERB_EXPN,
	SMTP_VERB_HELP,
	SMTP_VERB_QUIT,
	SMTP_VERB_STARTTLS,
	SMTP_VERB_AUTH,
	SMTP_VERB_COUNT
};
const char *smtp_verb_str(enum smtp_verb v);

#define SMTP_PARAMS_MAX 16

struct smtp_param {
	const char *key;   /* as sent (compare case-insensitively) */
	const char *value; /* NULL for a bare keyword */
};

struct smtp_cmd {
	enum smtp_verb verb;
	const char *arg; /* what follows the verb and its blanks; "" if none. For MAIL
	                  * and RCPT it ends where the path's '>' was ("FROM:<a@b"):
	                  * use path and params */
	/* MAIL FROM / RCPT TO only: */
	const char *path; /* the address between < and >, "" for the null path */
	struct smtp_param params[SMTP_PARAMS_MAX];
	int nparams;
	/* BDAT only: */
	uint64_t chunk_size;
	int last_chunk;
};

/*
 * Parse one command line (without CRLF) in place: line is modified (NULs
 * written, line[len] included, so that byte must be writable: the CR or LF
 * that ended the line will do) and cmd's pointers point into it. Verbs are
 * case-insensitive; trailing blanks are ignored, and so are extra blanks
 * after the verb and after "FROM:"/"TO:" ("MAIL FROM: <a@b>" is accepted).
 * A source route (<@a,@b:u@c>) is dropped from path.
 * Returns 0; KUMO_EPARSE for a known verb with bad syntax (MAIL without
 * FROM:<...>, RCPT TO:<>, unbalanced brackets, a blank inside <...> outside
 * quotes, a bad parameter keyword or an empty value, too many parameters,
 * BDAT without a size or with a word other than LAST, HELO/EHLO/LHLO/AUTH
 * without an argument, DATA/RSET/QUIT/STARTTLS with one) and for a line
 * holding a NUL byte; KUMO_ETOOLONG when len >= SMTP_LINE_MAX. An unknown
 * verb is not an error: cmd->verb is SMTP_VERB_UNKNOWN (arg is still set).
 */
int smtp_cmd_parse(char *line, size_t len, struct smtp_cmd *cmd);
/*
 * The parameter with this key (case-insensitive), NULL if absent. Its value
 * is NULL for a bare keyword (SMTPUTF8): check p->value before using it.
 */
const struct smtp_param *smtp_cmd_param(const struct smtp_cmd *cmd, const char *key);

/* ---- EHLO capabilities ---- */

enum smtp_cap {
	SMTP_CAP_PIPELINING = 1u << 0,
	SMTP_CAP_STARTTLS = 1u << 1,
	SMTP_CAP_SIZE = 1u << 2,
	SMTP_CAP_8BITMIME = 1u << 3,
	SMTP_CAP_SMTPUTF8 = 1u << 4,
	SMTP_CAP_CHUNKING = 1u << 5,
	SMTP_CAP_ENHANCEDSTATUSCODES = 1u << 6,
	SMTP_CAP_DSN = 1u << 7,
	SMTP_CAP_AUTH = 1u << 8,
	SMTP_CAP_BINARYMIME = 1u << 9,
};

enum smtp_auth_mech {
	SMTP_AUTH_PLAIN = 1u << 0,
	SMTP_AUTH_LOGIN = 1u << 1,
	SMTP_AUTH_CRAM_MD5 = 1u << 2,
	SMTP_AUTH_XOAUTH2 = 1u << 3,
	SMTP_AUTH_OTHER = 1u << 4,
};

struct smtp_caps {
	unsigned flags;    /* SMTP_CAP_* */
	uint64_t size_max; /* SIZE's value; 0 when absent or unlimited */
	unsigned auth;     /* SMTP_AUTH_* (from "AUTH x y" and "AUTH=x y") */
};

/* Read the capabilities from a parsed EHLO reply (its first line is the greeting). */
void smtp_caps_parse(const struct smtp_reply *r, struct smtp_caps *caps);

/* ---- DATA dot-stuffing ---- */

/* Encoder state: whether the next byte starts a line. Zero-initialise, or use _init. */
struct smtp_dot_enc {
	int state;
};
void smtp_dot_enc_init(struct smtp_dot_enc *e);
/*
 * Append data to out with a '.' doubled at the start of every line. Only
 * CRLF starts a line (as in the decoder): bare LF and bare CR are passed
 * through unchanged. KUMO_ENOSPACE if out's cap is hit.
 */
int smtp_dot_encode(struct smtp_dot_enc *e, struct buf *out, const char *data, size_t len);
/*
 * End the data: CRLF if the last line lacked one (the data was not empty and
 * did not end in CRLF), then ".\r\n". So decode(encode(x)) is x, plus CRLF
 * when x is not empty and does not end in CRLF.
 */
int smtp_dot_encode_end(struct smtp_dot_enc *e, struct buf *out);

/*
 * Decoder: feeds of any size, split anywhere (even inside CRLF.CRLF), give
 * the same output and consumed counts as one whole feed.
 * The stream is assumed to begin at the start of a line (just after the
 * 354 reply), so ".\r\n" first is an empty message. The message bytes
 * (leading dots removed, the final CRLF.CRLF not included but the CRLF
 * ending the last line kept) are appended to out; out may be NULL to only
 * count. Only CRLF "." CRLF ends the data: a bare LF or bare CR is content
 * and never starts a line, so "\n.\n", "\r\n.\n" and "\n.\r\n" do not
 * end it (SMTP smuggling, CVE-2023-51766). A line starting with '.' has
 * that dot removed, whatever follows it. If out's cap is reached, out is
 * filled up to the cap, the rest is discarded and `overflow` is set;
 * decoding continues so the caller can answer 552 after the end instead of
 * losing sync.
 */
struct smtp_dot_dec {
	int state;
	int overflow;    /* out's cap was reached; the rest was discarded */
	uint64_t octets; /* decoded message bytes seen, kept or not */
};
void smtp_dot_dec_init(struct smtp_dot_dec *d);
/*
 * Decode from in[0..len). Sets *consumed. Returns 1 when the end of data
 * was reached (*consumed stops just after its LF; the rest of in is the
 * next command), 0 when all of in was consumed without reaching it.
 */
int smtp_dot_decode(struct smtp_dot_dec *d, const char *in, size_t len, struct buf *out,
                    size_t *consumed);

#endif
