/*
 * smtp_proto.c: the SMTP wire format with no I/O (see smtp_proto.h). Line
 * framing, reply parsing, server-side command parsing, EHLO capabilities and
 * dot-stuffing in both directions. Every parser here reads bytes a peer
 * chose, so each one checks lengths before it looks and never trusts a
 * terminator to be present; the hot paths (line framing, the DATA decoder)
 * scan with memchr and copy whole runs, never byte by byte.
 *
 * Lines: only CRLF (or, for framing commands and replies, a bare LF) ends a
 * line. In DATA only CRLF starts a new line: a bare LF or bare CR is message
 * content, so "\n.\n" or "\r.\r" never ends the data (the SMTP smuggling
 * class of attacks, CVE-2023-51766 and friends, lives in that gap).
 */
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "kumo.h"
#include "smtp_proto.h"

/* ---- line framing ---- */

int
smtp_line_next(const char *data, size_t len, size_t max, size_t *linelen, size_t *consumed)
{
	const char *nl;
	size_t n, scan;

	if (max == 0)
		max = SMTP_LINE_MAX;
	scan = len < max ? len : max;
	nl = scan > 0 ? memchr(data, '\n', scan) : NULL;
	if (nl == NULL)
		return len >= max ? KUMO_ETOOLONG : KUMO_EAGAIN;
	n = (size_t)(nl - data);
	*consumed = n + 1;
	if (n > 0 && data[n - 1] == '\r')
		n--;
	*linelen = n;
	return 0;
}

/* ---- replies ---- */

void
smtp_reply_init(struct smtp_reply *r)
{
	r->code = 0;
	r->enhanced[0] = '\0';
	buf_init(&r->text, 0);
	r->nlines = 0;
}

void
smtp_reply_release(struct smtp_reply *r)
{
	if (r == NULL)
		return;
	buf_release(&r->text);
	r->code = 0;
	r->enhanced[0] = '\0';
	r->nlines = 0;
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* Count 1..3 digits at p[0..len); 0 if there are none or more than 3. */
static size_t
digits_1_3(const char *p, size_t len)
{
	size_t n = 0;

	while (n < len && is_digit((unsigned char)p[n]))
		n++;
	return n >= 1 && n <= 3 ? n : 0;
}

/*
 * Length of an RFC 3463 enhanced status code ("X.Y.Z", X the reply code's
 * class) at the start of text, not counting the space after it; 0 if text
 * does not start with a well-formed one followed by a space or its end.
 */
static size_t
enhanced_len(const char *text, size_t len, int code)
{
	size_t i, n;

	if (len < 5 || text[0] != (char)('0' + code / 100) || text[1] != '.')
		return 0;
	i = 2;
	if ((n = digits_1_3(text + i, len - i)) == 0)
		return 0;
	i += n;
	if (i >= len || text[i] != '.')
		return 0;
	i++;
	if ((n = digits_1_3(text + i, len - i)) == 0)
		return 0;
	i += n;
	if (i < len && text[i] != ' ')
		return 0;
	return i;
}

/* Check one reply line's "NNN" + separator; the code, or KUMO_EPARSE. */
static int
reply_line_code(const char *line, size_t len, int *final)
{
	int code;

	if (len < 3 || !is_digit((unsigned char)line[0]) || !is_digit((unsigned char)line[1]) ||
	    !is_digit((unsigned char)line[2]))
		return KUMO_EPARSE;
	code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	if (code < 200 || code > 599)
		return KUMO_EPARSE;
	if (len == 3 || line[3] == ' ')
		*final = 1;
	else if (line[3] == '-')
		*final = 0;
	else
		return KUMO_EPARSE;
	return code;
}

int
smtp_reply_parse(const char *data, size_t len, struct smtp_reply *r, size_t *consumed)
{
	size_t off = 0, linelen, used, elen;
	int code = 0, c, final = 0, nlines = 0, all_enhanced = 1, rc;
	const char *line, *text;

	r->code = 0;
	r->enhanced[0] = '\0';
	r->nlines = 0;
	buf_reset(&r->text);

	/* Pass 1: find the end of the reply, validate every line. */
	while (!final) {
		rc = smtp_line_next(data + off, len - off, SMTP_LINE_MAX, &linelen, &used);
		if (rc != 0)
			return rc;
		line = data + off;
		if ((c = reply_line_code(line, linelen, &final)) < 0)
			return c;
		if (nlines == 0)
			code = c;
		else if (c != code)
			return KUMO_EPARSE;
		if (++nlines > SMTP_REPLY_LINES_MAX)
			return KUMO_EPARSE;
		text = linelen > 4 ? line + 4 : line + linelen;
		if (enhanced_len(text, linelen > 4 ? linelen - 4 : 0, code) == 0)
			all_enhanced = 0;
		off += used;
	}

	/* Pass 2: collect the texts, without the enhanced codes if every line had one. */
	*consumed = off;
	r->code = code;
	r->nlines = nlines;
	off = 0;
	for (c = 0; c < nlines; c++) {
		(void)smtp_line_next(data + off, len - off, SMTP_LINE_MAX, &linelen, &used);
		line = data + off;
		off += used;
		text = linelen > 4 ? line + 4 : line + linelen;
		linelen = linelen > 4 ? linelen - 4 : 0;
		if (all_enhanced) {
			elen = enhanced_len(text, linelen, code);
			if (c == 0) {
				memcpy(r->enhanced, text, elen);
				r->enhanced[elen] = '\0';
			}
			if (elen < linelen)
				elen++; /* the space after it */
			text += elen;
			linelen -= elen;
		}
		if (c > 0)
			(void)buf_putc(&r->text, '\n');
		(void)buf_append(&r->text, text, linelen);
	}
	return 0;
}

/* ---- commands ---- */

static const char *const verb_names[SMTP_VERB_COUNT] = {
    [SMTP_VERB_UNKNOWN] = "UNKNOWN", [SMTP_VERB_HELO] = "HELO", [SMTP_VERB_EHLO] = "EHLO",
    [SMTP_VERB_LHLO] = "LHLO",       [SMTP_VERB_MAIL] = "MAIL", [SMTP_VERB_RCPT] = "RCPT",
    [SMTP_VERB_DATA] = "DATA",       [SMTP_VERB_BDAT] = "BDAT", [SMTP_VERB_RSET] = "RSET",
    [SMTP_VERB_NOOP] = "NOOP",       [SMTP_VERB_VRFY] = "VRFY", [SMTP_VERB_EXPN] = "EXPN",
    [SMTP_VERB_HELP] = "HELP",       [SMTP_VERB_QUIT] = "QUIT", [SMTP_VERB_STARTTLS] = "STARTTLS",
    [SMTP_VERB_AUTH] = "AUTH",
};

const char *
smtp_verb_str(enum smtp_verb v)
{
	if ((int)v < 0 || v >= SMTP_VERB_COUNT)
		return "UNKNOWN";
	return verb_names[v];
}

static int
is_space(int c)
{
	return c == ' ' || c == '\t';
}

static int
is_alnum(int c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Does s[0..n) equal the upper-case word w, ignoring case? */
static int
word_eq(const char *s, size_t n, const char *w)
{
	size_t wl = strlen(w);

	return n == wl && strncasecmp(s, w, n) == 0;
}

/*
 * Parse "<path> [params]" at p (already past "FROM:"/"TO:" and any spaces),
 * NUL-terminating the path and each parameter in place.
 */
static int
parse_path_params(char *p, struct smtp_cmd *cmd)
{
	char *q, *key, *eq;
	int quoted = 0;

	if (*p != '<')
		return KUMO_EPARSE;
	p++;
	for (q = p; *q != '\0'; q++) {
		if (quoted) {
			if (*q == '\\' && q[1] != '\0')
				q++;
			else if (*q == '"')
				quoted = 0;
			continue;
		}
		if (*q == '"')
			quoted = 1;
		else if (*q == '>')
			break;
		else if (*q == '<' || is_space((unsigned char)*q))
			return KUMO_EPARSE;
	}
	if (*q != '>')
		return KUMO_EPARSE;
	*q++ = '\0';
	/* RFC 5321 4.1.1.3: a source route "@a,@b:" is accepted and ignored. */
	if (*p == '@') {
		char *colon = strchr(p, ':');

		if (colon == NULL)
			return KUMO_EPARSE;
		p = colon + 1;
	}
	cmd->path = p;

	if (*q != '\0' && !is_space((unsigned char)*q))
		return KUMO_EPARSE;
	for (;;) {
		while (is_space((unsigned char)*q))
			*q++ = '\0';
		if (*q == '\0')
			break;
		if (cmd->nparams >= SMTP_PARAMS_MAX)
			return KUMO_EPARSE;
		key = q;
		while (*q != '\0' && !is_space((unsigned char)*q))
			q++;
		if (*q != '\0')
			*q++ = '\0';
		/* esmtp-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-") */
		if (!is_alnum((unsigned char)key[0]))
			return KUMO_EPARSE;
		for (eq = key + 1; *eq != '\0' && *eq != '='; eq++)
			if (!is_alnum((unsigned char)*eq) && *eq != '-')
				return KUMO_EPARSE;
		cmd->params[cmd->nparams].key = key;
		cmd->params[cmd->nparams].value = NULL;
		if (*eq == '=') {
			*eq = '\0';
			if (eq[1] == '\0')
				return KUMO_EPARSE;
			cmd->params[cmd->nparams].value = eq + 1;
		}
		cmd->nparams++;
	}
	return 0;
}

/* "BDAT size [LAST]". */
static int
parse_bdat(const char *p, struct smtp_cmd *cmd)
{
	uint64_t n = 0;
	const char *w;

	if (!is_digit((unsigned char)*p))
		return KUMO_EPARSE;
	for (; is_digit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (n > (UINT64_MAX - d) / 10)
			return KUMO_EPARSE;
		n = n * 10 + d;
	}
	cmd->chunk_size = n;
	if (*p == '\0')
		return 0;
	if (!is_space((unsigned char)*p))
		return KUMO_EPARSE;
	while (is_space((unsigned char)*p))
		p++;
	w = p;
	while (*p != '\0' && !is_space((unsigned char)*p))
		p++;
	if (p == w)
		return 0; /* trailing blanks were trimmed; unreachable in practice */
	if (!word_eq(w, (size_t)(p - w), "LAST"))
		return KUMO_EPARSE;
	while (is_space((unsigned char)*p))
		p++;
	if (*p != '\0')
		return KUMO_EPARSE;
	cmd->last_chunk = 1;
	return 0;
}

int
smtp_cmd_parse(char *line, size_t len, struct smtp_cmd *cmd)
{
	size_t vlen, i;
	char *arg;

	memset(cmd, 0, sizeof(*cmd));
	cmd->verb = SMTP_VERB_UNKNOWN;
	cmd->arg = "";
	cmd->path = "";
	if (len >= SMTP_LINE_MAX)
		return KUMO_ETOOLONG;
	/* A NUL would silently cut the C strings we hand out. */
	if (memchr(line, '\0', len) != NULL)
		return KUMO_EPARSE;
	line[len] = '\0';
	while (len > 0 && is_space((unsigned char)line[len - 1]))
		line[--len] = '\0';

	for (vlen = 0; vlen < len && !is_space((unsigned char)line[vlen]); vlen++)
		;
	arg = line + vlen;
	while (is_space((unsigned char)*arg))
		arg++;
	cmd->arg = arg;
	for (i = 1; i < SMTP_VERB_COUNT; i++)
		if (word_eq(line, vlen, verb_names[i]))
			cmd->verb = (enum smtp_verb)i;
	if (cmd->verb != SMTP_VERB_UNKNOWN)
		line[vlen] = '\0'; /* arg is past it, or it is already the end */

	switch (cmd->verb) {
	case SMTP_VERB_HELO:
	case SMTP_VERB_EHLO:
	case SMTP_VERB_LHLO:
	case SMTP_VERB_AUTH:
		return *arg == '\0' ? KUMO_EPARSE : 0;
	case SMTP_VERB_DATA:
	case SMTP_VERB_RSET:
	case SMTP_VERB_QUIT:
	case SMTP_VERB_STARTTLS:
		return *arg == '\0' ? 0 : KUMO_EPARSE;
	case SMTP_VERB_MAIL:
		if (strncasecmp(arg, "FROM:", 5) != 0)
			return KUMO_EPARSE;
		arg += 5;
		while (is_space((unsigned char)*arg))
			arg++;
		return parse_path_params(arg, cmd);
	case SMTP_VERB_RCPT: {
		int rc;

		if (strncasecmp(arg, "TO:", 3) != 0)
			return KUMO_EPARSE;
		arg += 3;
		while (is_space((unsigned char)*arg))
			arg++;
		if ((rc = parse_path_params(arg, cmd)) != 0)
			return rc;
		return cmd->path[0] == '\0' ? KUMO_EPARSE : 0;
	}
	case SMTP_VERB_BDAT:
		return parse_bdat(arg, cmd);
	default:
		return 0;
	}
}

const struct smtp_param *
smtp_cmd_param(const struct smtp_cmd *cmd, const char *key)
{
	int i;

	for (i = 0; i < cmd->nparams && i < SMTP_PARAMS_MAX; i++)
		if (strcasecmp(cmd->params[i].key, key) == 0)
			return &cmd->params[i];
	return NULL;
}

/* ---- EHLO capabilities ---- */

static const struct {
	const char *name;
	unsigned flag;
} cap_names[] = {
    {"PIPELINING", SMTP_CAP_PIPELINING},
    {"STARTTLS", SMTP_CAP_STARTTLS},
    {"SIZE", SMTP_CAP_SIZE},
    {"8BITMIME", SMTP_CAP_8BITMIME},
    {"SMTPUTF8", SMTP_CAP_SMTPUTF8},
    {"CHUNKING", SMTP_CAP_CHUNKING},
    {"ENHANCEDSTATUSCODES", SMTP_CAP_ENHANCEDSTATUSCODES},
    {"DSN", SMTP_CAP_DSN},
    {"AUTH", SMTP_CAP_AUTH},
    {"BINARYMIME", SMTP_CAP_BINARYMIME},
};

static const struct {
	const char *name;
	unsigned flag;
} auth_names[] = {
    {"PLAIN", SMTP_AUTH_PLAIN},
    {"LOGIN", SMTP_AUTH_LOGIN},
    {"CRAM-MD5", SMTP_AUTH_CRAM_MD5},
    {"XOAUTH2", SMTP_AUTH_XOAUTH2},
};

/* Add the mechanisms named by the space-separated words in p[0..len). */
static unsigned
auth_mechs(const char *p, size_t len)
{
	unsigned mechs = 0, flag;
	size_t i = 0, w, k;

	while (i < len) {
		while (i < len && (is_space((unsigned char)p[i]) || p[i] == '='))
			i++;
		w = i;
		while (i < len && !is_space((unsigned char)p[i]))
			i++;
		if (i == w)
			break;
		flag = SMTP_AUTH_OTHER;
		for (k = 0; k < KUMO_NELEM(auth_names); k++)
			if (word_eq(p + w, i - w, auth_names[k].name))
				flag = auth_names[k].flag;
		mechs |= flag;
	}
	return mechs;
}

/* SIZE's value: decimal, 0 when absent, malformed or too large. */
static uint64_t
size_value(const char *p, size_t len)
{
	uint64_t n = 0;
	size_t i = 0;

	while (i < len && is_space((unsigned char)p[i]))
		i++;
	if (i == len)
		return 0;
	for (; i < len && is_digit((unsigned char)p[i]); i++) {
		unsigned d = (unsigned)(p[i] - '0');

		if (n > (UINT64_MAX - d) / 10)
			return 0;
		n = n * 10 + d;
	}
	while (i < len && is_space((unsigned char)p[i]))
		i++;
	return i == len ? n : 0;
}

void
smtp_caps_parse(const struct smtp_reply *r, struct smtp_caps *caps)
{
	const char *p, *end, *nl;
	size_t len, kw, k;

	memset(caps, 0, sizeof(*caps));
	if (r->code != 250 || r->text.data == NULL)
		return;
	p = r->text.data;
	end = p + r->text.len;
	/* The first line is the greeting ("mx.example.com Hello ..."), not a capability. */
	nl = memchr(p, '\n', (size_t)(end - p));
	if (nl == NULL)
		return;
	for (p = nl + 1; p < end; p = nl + 1) {
		nl = memchr(p, '\n', (size_t)(end - p));
		if (nl == NULL)
			nl = end;
		len = (size_t)(nl - p);
		for (kw = 0; kw < len && !is_space((unsigned char)p[kw]) && p[kw] != '='; kw++)
			;
		for (k = 0; k < KUMO_NELEM(cap_names); k++) {
			if (!word_eq(p, kw, cap_names[k].name))
				continue;
			caps->flags |= cap_names[k].flag;
			if (cap_names[k].flag == SMTP_CAP_SIZE)
				caps->size_max = size_value(p + kw, len - kw);
			else if (cap_names[k].flag == SMTP_CAP_AUTH)
				caps->auth |= auth_mechs(p + kw, len - kw);
		}
	}
}

/* ---- dot-stuffing ---- */

enum { ENC_BOL = 0, ENC_MID, ENC_CR };

void
smtp_dot_enc_init(struct smtp_dot_enc *e)
{
	e->state = ENC_BOL;
}

int
smtp_dot_encode(struct smtp_dot_enc *e, struct buf *out, const char *data, size_t len)
{
	const char *p = data, *end = data + len, *run = data, *cr;
	int rc;

	while (p < end) {
		if (e->state == ENC_BOL) {
			if (*p == '.') {
				/* Emit what came before, then the extra dot; the line's own dot
				 * starts the next run. */
				if ((rc = buf_append(out, run, (size_t)(p - run))) != 0 ||
				    (rc = buf_putc(out, '.')) != 0)
					return rc;
				run = p;
			}
			e->state = ENC_MID;
			continue;
		}
		if (e->state == ENC_CR) {
			if (*p == '\n')
				e->state = ENC_BOL;
			else if (*p != '\r')
				e->state = ENC_MID;
			p++;
			continue;
		}
		cr = memchr(p, '\r', (size_t)(end - p));
		if (cr == NULL) {
			p = end;
			break;
		}
		p = cr + 1;
		e->state = ENC_CR;
	}
	return buf_append(out, run, (size_t)(end - run));
}

int
smtp_dot_encode_end(struct smtp_dot_enc *e, struct buf *out)
{
	int rc;

	if (e->state != ENC_BOL)
		rc = buf_append(out, "\r\n.\r\n", 5);
	else
		rc = buf_append(out, ".\r\n", 3);
	if (rc == 0)
		e->state = ENC_BOL;
	return rc;
}

/*
 * Decoder states. BOL: at the start of a line (after CRLF, or at the start
 * of the stream). DOT: a '.' began the line (held back, never emitted).
 * DOTCR: ".\r" began the line (the CR held back). MID: inside a line. CR:
 * inside a line just after a CR (already emitted). DONE: CRLF.CRLF seen.
 */
enum { DEC_BOL = 0, DEC_DOT, DEC_DOTCR, DEC_MID, DEC_CR, DEC_DONE };

void
smtp_dot_dec_init(struct smtp_dot_dec *d)
{
	d->state = DEC_BOL;
	d->overflow = 0;
	d->octets = 0;
}

/*
 * Keep n decoded bytes. Past out's cap, keep what fits and discard the rest,
 * so the kept bytes never depend on how the input was split.
 */
static void
dec_emit(struct smtp_dot_dec *d, struct buf *out, const char *p, size_t n)
{
	size_t cap, room;

	if (n == 0)
		return;
	d->octets += n;
	if (out == NULL || d->overflow)
		return;
	cap = out->max ? out->max : SIZE_MAX / 2;
	room = out->len < cap ? cap - out->len : 0;
	if (n > room) {
		d->overflow = 1;
		n = room;
	}
	if (n > 0 && buf_append(out, p, n) != 0)
		d->overflow = 1;
}

int
smtp_dot_decode(struct smtp_dot_dec *d, const char *in, size_t len, struct buf *out,
                size_t *consumed)
{
	const char *p = in, *end = in + len, *run, *cr;

	*consumed = 0;
	if (d->state == DEC_DONE)
		return 1;
	while (p < end) {
		switch (d->state) {
		case DEC_BOL:
			if (*p == '.') {
				d->state = DEC_DOT;
				p++;
			} else {
				d->state = DEC_MID;
			}
			break;
		case DEC_DOT:
			if (*p == '\r') {
				d->state = DEC_DOTCR;
				p++;
			} else {
				d->state = DEC_MID; /* a stuffed dot: dropped */
			}
			break;
		case DEC_DOTCR:
			if (*p == '\n') {
				d->state = DEC_DONE;
				*consumed = (size_t)(p + 1 - in);
				return 1;
			}
			/* ".\r" then more: an ordinary line whose leading dot is dropped. */
			dec_emit(d, out, "\r", 1);
			d->state = DEC_CR;
			break;
		case DEC_CR:
			if (*p == '\n') {
				dec_emit(d, out, p, 1);
				d->state = DEC_BOL;
				p++;
			} else {
				d->state = DEC_MID;
			}
			break;
		case DEC_MID:
			/*
			 * One run up to the next CRLF followed by '.', or the end
			 * of the input: a single append however many lines it spans.
			 */
			run = p;
			for (;;) {
				cr = memchr(p, '\r', (size_t)(end - p));
				if (cr == NULL) {
					p = end;
					d->state = DEC_MID;
					break;
				}
				if (cr + 1 == end) {
					p = end;
					d->state = DEC_CR;
					break;
				}
				if (cr[1] != '\n') {
					p = cr + 1;
					continue;
				}
				p = cr + 2;
				if (p == end || *p == '.') {
					d->state = DEC_BOL;
					break;
				}
			}
			dec_emit(d, out, run, (size_t)(p - run));
			break;
		}
	}
	*consumed = len;
	return 0;
}
