/*
 * jlog.c: the delivery log, one JSON object per line (jansson), one line
 * per event and recipient: Reception, Delivery, TransientFailure, Bounce,
 * Expiration. Files live under log_dir, one per daemon start
 * (YYYYMMDD-HHMMSS.jsonl); lines are buffered and flushed by the caller at
 * most a fraction of a second later (jlog_flush), and at exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "dane.h"
#include "kumo.h"
#include "log.h"
#include "smtp_client.h"
#include "tls.h"

#include "kumod.h"

static FILE *jlog_fp;
static char *jlog_path;

static const char *const kind_names[] = {
	[JLOG_RECEPTION] = "Reception",	       [JLOG_DELIVERY] = "Delivery",
	[JLOG_TRANSIENT] = "TransientFailure", [JLOG_BOUNCE] = "Bounce",
	[JLOG_EXPIRATION] = "Expiration", [JLOG_ADMIN_BOUNCE] = "AdminBounce",
};

const char *
jlog_kind_str(enum jlog_kind k)
{
	return (unsigned)k < KUMO_NELEM(kind_names) ? kind_names[k] : "?";
}

int
jlog_open(const char *dir, char **err_r)
{
	char name[64];
	time_t now = time(NULL);
	struct tm tm;
	int fd;

	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		*err_r = xasprintf("log_dir %s: %s", dir, strerror(errno));
		return -errno;
	}
	gmtime_r(&now, &tm);
	strftime(name, sizeof(name), "%Y%m%d-%H%M%S", &tm);
	free(jlog_path);
	jlog_path = xasprintf("%s/%s.jsonl", dir, name);
	fd = open(jlog_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
	if (fd < 0) {
		*err_r = xasprintf("%s: %s", jlog_path, strerror(errno));
		return -errno;
	}
	if (jlog_fp != NULL)
		fclose(jlog_fp);
	jlog_fp = fdopen(fd, "a");
	setvbuf(jlog_fp, NULL, _IOFBF, 1 << 16);
	return 0;
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
put_str(json_t *o, const char *k, const char *v)
{
	if (v != NULL)
		json_object_set_new(o, k, json_string(v));
	else
		json_object_set_new(o, k, json_null());
}

/*
 * The TLS policy a session ran under: "tls_mode" (the effective
 * enable_tls), "tls_policy" (what chose it: configured, mta-sts:enforce,
 * mta-sts:testing, mta-sts:none, dane), "mta_sts" (the policy mode applied,
 * null if none), "dane" (the verdict, null without DANE) and "dane_match"
 * (which record authenticated the server).
 */
static void
put_tls_policy(json_t *o, const struct smtp_client *c)
{
	const char *label = smtp_client_tls_policy(c);
	const struct dane_result *dr = smtp_client_dane_result(c);

	put_str(o, "tls_mode", tls_mode_str(smtp_client_tls_mode(c)));
	put_str(o, "tls_policy", *label ? label : "configured");
	put_str(o, "mta_sts", strncmp(label, "mta-sts:", 8) == 0 ? label + 8 : NULL);
	put_str(o, "dane", dr != NULL ? dane_verdict_str(dr->verdict) : NULL);
	put_str(o, "dane_match", dr != NULL && dr->verdict == DANE_VERIFIED ? dr->reason : NULL);
}

static void
write_one(const struct jlog_rec *r, const char *rcpt, double ts)
{
	const struct msg *m = r->m;
	json_t *o = json_object(), *resp = json_object();
	char *line;

	json_object_set_new(o, "type", json_string(jlog_kind_str(r->kind)));
	put_str(o, "id", m->id);
	put_str(o, "sender", m->sender);
	put_str(o, "recipient", rcpt);
	put_str(o, "queue", m->queue);
	put_str(o, "site", r->site);
	put_str(o, "egress_source", r->source);
	put_str(o, "peer_address", r->peer_address);
	json_object_set_new(resp, "code", json_integer(r->code));
	put_str(resp, "enhanced_code", r->enhanced != NULL && *r->enhanced ? r->enhanced : NULL);
	put_str(resp, "content", r->text != NULL ? r->text : "");
	json_object_set_new(o, "response", resp);
	json_object_set_new(o, "size", json_integer(m->data != NULL ? (json_int_t)m->data->len : 0));
	json_object_set_new(o, "num_attempts", json_integer(m->attempts));
	put_str(o, "tls_version", r->tls_version != NULL && *r->tls_version ? r->tls_version : NULL);
	put_str(o, "tls_cipher", r->tls_cipher != NULL && *r->tls_cipher ? r->tls_cipher : NULL);
	if (r->client != NULL)
		put_tls_policy(o, r->client);
	json_object_set_new(o, "timestamp", json_real(ts));
	json_object_set_new(o, "created", json_real(m->created));
	if (m->tenant != NULL)
		put_str(o, "tenant", m->tenant);
	if (m->campaign != NULL)
		put_str(o, "campaign", m->campaign);
	line = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (line != NULL && jlog_fp != NULL) {
		fputs(line, jlog_fp);
		fputc('\n', jlog_fp);
	}
	free(line);
	json_decref(o);
}

void
jlog_write(const struct jlog_rec *r)
{
	double ts = now_s();
	size_t i;

	if (jlog_fp == NULL)
		return;
	if (r->recipient != NULL) {
		write_one(r, r->recipient, ts);
		return;
	}
	for (i = 0; i < r->m->nrcpts; i++)
		write_one(r, r->m->rcpts[i], ts);
}

void
jlog_flush(void)
{
	if (jlog_fp != NULL)
		fflush(jlog_fp);
}

void
jlog_close(void)
{
	if (jlog_fp != NULL)
		fclose(jlog_fp);
	jlog_fp = NULL;
	free(jlog_path);
	jlog_path = NULL;
}
