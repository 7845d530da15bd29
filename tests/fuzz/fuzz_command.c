/*
 * fuzz_command.c: libFuzzer harness for the server-side command parser. The
 * input is a byte stream from a client: split it into lines with
 * smtp_line_next (the way smtp-sink does), parse each one with
 * smtp_cmd_parse, and check the results point inside the line. The same
 * bytes are then read as a server's replies and fed to smtp_caps_parse,
 * since an EHLO reply is also peer input.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kumo.h"
#include "smtp_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Does the C string s lie inside line[0..len]? */
static int
inside(const char *s, const char *line, size_t len)
{
	return s >= line && s <= line + len && s + strlen(s) <= line + len;
}

static void
check_cmd(const struct smtp_cmd *cmd, const char *line, size_t len, int rc)
{
	int i;

	if (rc != 0 && rc != KUMO_EPARSE && rc != KUMO_ETOOLONG)
		abort();
	if ((int)cmd->verb < 0 || cmd->verb >= SMTP_VERB_COUNT || smtp_verb_str(cmd->verb) == NULL)
		abort();
	if (rc != 0)
		return;
	if (cmd->arg[0] != '\0' && !inside(cmd->arg, line, len))
		abort();
	if (cmd->nparams < 0 || cmd->nparams > SMTP_PARAMS_MAX)
		abort();
	if (cmd->verb != SMTP_VERB_MAIL && cmd->verb != SMTP_VERB_RCPT && cmd->nparams != 0)
		abort();
	if (cmd->verb == SMTP_VERB_RCPT && cmd->path[0] == '\0')
		abort();
	if (cmd->path[0] != '\0' && !inside(cmd->path, line, len))
		abort();
	for (i = 0; i < cmd->nparams; i++) {
		if (!inside(cmd->params[i].key, line, len) || cmd->params[i].key[0] == '\0')
			abort();
		if (cmd->params[i].value != NULL &&
		    (!inside(cmd->params[i].value, line, len) || cmd->params[i].value[0] == '\0'))
			abort();
		if (smtp_cmd_param(cmd, cmd->params[i].key) == NULL)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data;
	size_t off = 0, linelen, used;
	struct smtp_cmd cmd;
	struct smtp_reply r;
	struct smtp_caps caps;
	int rc;

	while (off < size) {
		char *line;

		rc = smtp_line_next(p + off, size - off, SMTP_LINE_MAX, &linelen, &used);
		if (rc == KUMO_ETOOLONG) {
			/* smtp-sink answers 500 and skips to the next LF; so do we. */
			const char *nl = memchr(p + off, '\n', size - off);

			if (nl == NULL)
				break;
			off = (size_t)(nl - p) + 1;
			continue;
		}
		if (rc != 0)
			break;
		if (used == 0 || used > size - off || linelen >= used)
			abort();
		/* An exact-size copy with one spare byte, so ASan sees any overrun. */
		line = malloc(linelen + 1);
		if (line == NULL)
			abort();
		memcpy(line, p + off, linelen);
		line[linelen] = '\n';
		rc = smtp_cmd_parse(line, linelen, &cmd);
		check_cmd(&cmd, line, linelen, rc);
		free(line);
		off += used;
	}

	smtp_reply_init(&r);
	for (off = 0; off < size; off += used) {
		if (smtp_reply_parse(p + off, size - off, &r, &used) != 0)
			break;
		smtp_caps_parse(&r, &caps);
	}
	smtp_reply_release(&r);
	return 0;
}
