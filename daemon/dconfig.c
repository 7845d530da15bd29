/*
 * dconfig.c: kumod.conf, the daemon's configuration model. Reads the
 * libconfig file, checks every key (unknown keys are errors), and reports
 * every problem as "file:line: setting: problem" rather than stopping at the
 * first one, so `kumod --check-config` shows an operator the whole list.
 * Egress keys (sources, pools, shaping) are parsed by lib/egress.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <libconfig.h>
#include <uv.h>

#include "buf.h"
#include "cidr.h"
#include "duration.h"
#include "egress.h"
#include "kumo.h"

#include "kumod.h"

#define DEFAULT_MAX_MESSAGE_SIZE (20 * 1024 * 1024)
#define DEFAULT_SPOOL_DIR LOCALSTATEDIR "/spool/kumod"
#define DEFAULT_LOG_DIR LOCALSTATEDIR "/log/kumod"

#define ERR(s, ...) (egress_config_error(errs, (s), __VA_ARGS__), bad++)

static int
check_keys(const config_setting_t *g, const char *const *known, struct buf *errs)
{
	int i, n = config_setting_length(g), bad = 0;

	for (i = 0; i < n; i++) {
		const config_setting_t *m = config_setting_get_elem(g, (unsigned)i);
		const char *name = config_setting_name(m);
		const char *const *k;

		for (k = known; *k != NULL; k++)
			if (strcmp(*k, name) == 0)
				break;
		if (*k == NULL)
			ERR(m, "unknown key");
	}
	return bad;
}

/* A string member into *out (replacing it). Returns problems found. */
static int
get_str(const config_setting_t *g, const char *key, char **out, struct buf *errs)
{
	const config_setting_t *m = config_setting_get_member(g, key);
	const char *s;
	int bad = 0;

	if (m == NULL)
		return 0;
	s = config_setting_get_string(m);
	if (s == NULL || *s == '\0')
		ERR(m, "want a non-empty string");
	else {
		free(*out);
		*out = xstrdup(s);
	}
	return bad;
}

static int
get_dur(const config_setting_t *g, const char *key, double *out, struct buf *errs)
{
	const config_setting_t *m = config_setting_get_member(g, key);
	uint64_t v;
	char *err = NULL;
	int bad = 0;

	if (m == NULL)
		return 0;
	switch (config_setting_type(m)) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		if (config_setting_get_int64(m) < 0)
			ERR(m, "a duration cannot be negative");
		else
			*out = (double)config_setting_get_int64(m);
		break;
	case CONFIG_TYPE_STRING:
		if (duration_parse(config_setting_get_string(m), &v, &err) != 0) {
			ERR(m, "%s", err != NULL ? err : "bad duration");
			free(err);
		} else
			*out = (double)v;
		break;
	default:
		ERR(m, "want seconds or a duration string such as \"20min\"");
	}
	return bad;
}

static int
get_strlist(const config_setting_t *g, const char *key, char ***out, size_t *n, struct buf *errs)
{
	const config_setting_t *m = config_setting_get_member(g, key);
	int i, len, bad = 0;

	if (m == NULL)
		return 0;
	if (config_setting_type(m) != CONFIG_TYPE_ARRAY && config_setting_type(m) != CONFIG_TYPE_LIST)
		return ERR(m, "want a list of strings [ \"...\" ]");
	len = config_setting_length(m);
	*out = xcalloc((size_t)len + 1, sizeof(char *));
	for (i = 0; i < len; i++) {
		const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
		const char *s = config_setting_get_string(e);

		if (s == NULL)
			ERR(e, "want a string");
		else
			(*out)[(*n)++] = xstrdup(s);
	}
	return bad;
}

/*
 * The control group: socket, allowed_users and allowed_groups (names or
 * numeric ids, resolved now), max_clients.
 */
static int
parse_control(struct kconf *c, const config_setting_t *g, struct buf *errs)
{
	static const char *const known[] = {"socket", "allowed_users", "allowed_groups",
					    "max_clients", NULL};
	char **names = NULL;
	size_t n = 0, i;
	int bad = 0, v;

	if (!config_setting_is_group(g))
		return ERR(g, "want a group { socket = \"...\"; allowed_users = [ ... ]; }");
	bad += check_keys(g, known, errs);
	bad += get_str(g, "socket", &c->control_socket, errs);
	if (config_setting_lookup_int(g, "max_clients", &v) == CONFIG_TRUE) {
		if (v < 1 || v > 1024)
			ERR(config_setting_get_member(g, "max_clients"), "want 1 to 1024");
		else
			c->control_max_clients = (unsigned)v;
	} else if (config_setting_get_member(g, "max_clients") != NULL)
		ERR(config_setting_get_member(g, "max_clients"), "want an integer");
	bad += get_strlist(g, "allowed_users", &names, &n, errs);
	c->control_uids = xcalloc(n + 1, sizeof(uid_t));
	for (i = 0; i < n; i++) {
		struct passwd *pw = getpwnam(names[i]);
		char *end;
		unsigned long id = strtoul(names[i], &end, 10);

		if (pw != NULL)
			c->control_uids[c->ncontrol_uids++] = pw->pw_uid;
		else if (*names[i] != '\0' && *end == '\0')
			c->control_uids[c->ncontrol_uids++] = (uid_t)id;
		else
			ERR(config_setting_get_member(g, "allowed_users"), "no such user \"%s\"",
			    names[i]);
		free(names[i]);
	}
	free(names);
	names = NULL;
	n = 0;
	bad += get_strlist(g, "allowed_groups", &names, &n, errs);
	c->control_gids = xcalloc(n + 1, sizeof(gid_t));
	for (i = 0; i < n; i++) {
		struct group *gr = getgrnam(names[i]);
		char *end;
		unsigned long id = strtoul(names[i], &end, 10);

		if (gr != NULL)
			c->control_gids[c->ncontrol_gids++] = gr->gr_gid;
		else if (*names[i] != '\0' && *end == '\0')
			c->control_gids[c->ncontrol_gids++] = (gid_t)id;
		else
			ERR(config_setting_get_member(g, "allowed_groups"), "no such group \"%s\"",
			    names[i]);
		free(names[i]);
	}
	free(names);
	return bad;
}

/* "127.0.0.1:2525", "[::1]:2525", "0.0.0.0:25" into sa. */
static int
parse_listen_addr(const char *s, struct sockaddr_storage *sa)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *colon;
	char *end;
	unsigned long port;
	size_t hl;

	memset(sa, 0, sizeof(*sa));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':')
			return KUMO_EPARSE;
		hl = (size_t)(rb - s - 1);
		if (hl >= sizeof(host))
			return KUMO_EPARSE;
		memcpy(host, s + 1, hl);
		host[hl] = '\0';
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return KUMO_EPARSE;
		hl = (size_t)(colon - s);
		if (hl >= sizeof(host))
			return KUMO_EPARSE;
		memcpy(host, s, hl);
		host[hl] = '\0';
	}
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || port > 65535)
		return KUMO_EPARSE;
	if (uv_ip4_addr(host, (int)port, (struct sockaddr_in *)sa) == 0)
		return 0;
	if (uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)sa) == 0)
		return 0;
	return KUMO_EPARSE;
}

static int
parse_listen(struct kconf *c, const config_setting_t *list, struct buf *errs)
{
	static const char *const known[] = {"address", "relay_hosts", "max_message_size",
					    "max_recipients", "hostname", "tls_certificate",
					    "tls_private_key", NULL};
	int i, n, bad = 0;

	if (!config_setting_is_list(list))
		return ERR(list, "want a list ( { address = \"127.0.0.1:25\"; }, ... )");
	n = config_setting_length(list);
	c->listen = xcalloc((size_t)n + 1, sizeof(*c->listen));
	for (i = 0; i < n; i++) {
		const config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
		struct kconf_listen *l = &c->listen[c->nlisten];
		const config_setting_t *m;

		if (!config_setting_is_group(g)) {
			ERR(g, "want { address = \"127.0.0.1:25\"; ... }");
			continue;
		}
		c->nlisten++;
		l->max_message_size = DEFAULT_MAX_MESSAGE_SIZE;
		l->max_recipients = 1024;
		bad += check_keys(g, known, errs);
		bad += get_str(g, "address", &l->address, errs);
		if (l->address == NULL)
			ERR(g, "address: a listener needs an address such as \"127.0.0.1:2525\"");
		else if (parse_listen_addr(l->address, &l->sa) != 0)
			ERR(config_setting_get_member(g, "address"),
			    "\"%s\": want ADDRESS:PORT or [IPV6]:PORT", l->address);
		if ((m = config_setting_get_member(g, "relay_hosts")) != NULL) {
			int j, len;

			if (config_setting_type(m) != CONFIG_TYPE_ARRAY &&
			    config_setting_type(m) != CONFIG_TYPE_LIST) {
				ERR(m, "want a list of addresses or CIDR blocks");
			} else {
				l->relay_hosts = cidr_list_new();
				len = config_setting_length(m);
				for (j = 0; j < len; j++) {
					const config_setting_t *e = config_setting_get_elem(m, (unsigned)j);
					const char *s = config_setting_get_string(e);
					char *err = NULL;

					if (s == NULL)
						ERR(e, "want a string such as \"10.0.0.0/8\"");
					else if (cidr_list_add(l->relay_hosts, s, &err) != 0) {
						ERR(e, "%s", err != NULL ? err : "bad CIDR block");
						free(err);
					}
				}
			}
		}
		if ((m = config_setting_get_member(g, "max_message_size")) != NULL) {
			long long v = config_setting_get_int64(m);

			if ((config_setting_type(m) != CONFIG_TYPE_INT &&
			     config_setting_type(m) != CONFIG_TYPE_INT64) ||
			    v < 0)
				ERR(m, "want a size in bytes (0: unlimited)");
			else
				l->max_message_size = (uint64_t)v;
		}
		if ((m = config_setting_get_member(g, "max_recipients")) != NULL) {
			if (config_setting_type(m) != CONFIG_TYPE_INT || config_setting_get_int(m) < 1)
				ERR(m, "want an integer >= 1");
			else
				l->max_recipients = (unsigned)config_setting_get_int(m);
		}
		bad += get_str(g, "hostname", &l->hostname, errs);
		bad += get_str(g, "tls_certificate", &l->tls_certificate, errs);
		bad += get_str(g, "tls_private_key", &l->tls_private_key, errs);
		if ((l->tls_certificate == NULL) != (l->tls_private_key == NULL))
			ERR(g, "tls_certificate and tls_private_key go together");
		if (l->tls_certificate != NULL && access(l->tls_certificate, R_OK) != 0)
			ERR(config_setting_get_member(g, "tls_certificate"), "%s: %s",
			    l->tls_certificate, strerror(errno));
		if (l->tls_private_key != NULL && access(l->tls_private_key, R_OK) != 0)
			ERR(config_setting_get_member(g, "tls_private_key"), "%s: %s",
			    l->tls_private_key, strerror(errno));
	}
	return bad;
}

static int
parse_queue(struct kconf_queue *q, const char *name, const config_setting_t *g, struct buf *errs,
	    const char *namekey)
{
	const char *const known[] = {"egress_pool", "retry_interval", "max_retry_interval", "max_age",
				     namekey, NULL};
	int bad = 0;

	if (!config_setting_is_group(g))
		return ERR(g, "want a group { egress_pool = \"...\"; retry_interval = \"20min\"; ... }");
	free(q->name);
	q->name = xstrdup(name);
	bad += check_keys(g, known, errs);
	bad += get_str(g, "egress_pool", &q->egress_pool, errs);
	bad += get_dur(g, "retry_interval", &q->retry_interval, errs);
	bad += get_dur(g, "max_retry_interval", &q->max_retry_interval, errs);
	bad += get_dur(g, "max_age", &q->max_age, errs);
	if (q->retry_interval < 1) {
		ERR(config_setting_get_member(g, "retry_interval"), "must be at least 1 second");
		q->retry_interval = 1;
	}
	return bad;
}

static int
parse_queues(struct kconf *c, const config_setting_t *g, struct buf *errs)
{
	static const char *const known[] = {"default", "tenants", "domains", NULL};
	static const char *const kinds[] = {"tenants", "domains"};
	static const char *const keys[] = {"tenant", "domain"};
	const config_setting_t *m;
	int bad = 0, i, k, n;

	if (!config_setting_is_group(g))
		return ERR(g, "want a group { default = { ... }; tenants = ( ... ); domains = ( ... ); }");
	bad += check_keys(g, known, errs);
	if ((m = config_setting_get_member(g, "default")) != NULL)
		bad += parse_queue(&c->queues[0], "default", m, errs, "");
	for (k = 0; k < 2; k++) {
		if ((m = config_setting_get_member(g, kinds[k])) == NULL)
			continue;
		if (!config_setting_is_list(m)) {
			ERR(m, "want a list ( { %s = \"...\"; ... } )", keys[k]);
			continue;
		}
		n = config_setting_length(m);
		for (i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
			const char *name = NULL;
			struct kconf_queue *q;
			char *full;

			if (!config_setting_is_group(e) ||
			    !config_setting_lookup_string(e, keys[k], &name) || *name == '\0') {
				ERR(e, "%s: each entry needs a %s", keys[k], keys[k]);
				continue;
			}
			c->queues = xreallocarray(c->queues, c->nqueues + 1, sizeof(*c->queues));
			q = &c->queues[c->nqueues++];
			*q = c->queues[0];
			q->name = NULL;
			q->egress_pool = c->queues[0].egress_pool ? xstrdup(c->queues[0].egress_pool) : NULL;
			full = xasprintf("%s:%s", keys[k], name);
			bad += parse_queue(q, full, e, errs, keys[k]);
			free(full);
		}
	}
	return bad;
}

static int
parse_dns(struct kconf *c, const config_setting_t *g, struct buf *errs)
{
	static const char *const known[] = {"local_data", "local_zones", "forwarders", "trust_anchor_file",
					    NULL};
	int bad = 0;

	if (!config_setting_is_group(g))
		return ERR(g, "want a group { local_data = [ ... ]; forwarders = [ ... ]; }");
	bad += check_keys(g, known, errs);
	bad += get_strlist(g, "local_data", &c->dns_local_data, &c->ndns_local_data, errs);
	bad += get_strlist(g, "forwarders", &c->dns_forwarders, &c->ndns_forwarders, errs);
	bad += get_strlist(g, "local_zones", &c->dns_local_zones, &c->ndns_local_zones, errs);
	bad += get_str(g, "trust_anchor_file", &c->dns_trust_anchor_file, errs);
	if (c->dns_trust_anchor_file != NULL && access(c->dns_trust_anchor_file, R_OK) != 0)
		ERR(config_setting_get_member(g, "trust_anchor_file"), "%s: %s",
		    c->dns_trust_anchor_file, strerror(errno));
	return bad;
}

/*
 * shaping_file: one KumoMTA-style shaping.json path or a list of them,
 * loaded in order on top of the shaping group (a domain may be configured
 * once across all of them). A relative path is taken from the directory of
 * the configuration file.
 */
static int
parse_shaping_files(struct kconf *c, const config_setting_t *m, struct buf *errs)
{
	int bad = 0, i, n = 1, list = config_setting_type(m) == CONFIG_TYPE_ARRAY ||
					 config_setting_type(m) == CONFIG_TYPE_LIST;

	if (list)
		n = config_setting_length(m);
	else if (config_setting_type(m) != CONFIG_TYPE_STRING)
		return ERR(m, "want a path \"shaping.json\" or a list of paths");
	for (i = 0; i < n; i++) {
		const config_setting_t *e = list ? config_setting_get_elem(m, (unsigned)i) : m;
		const char *f = config_setting_get_string(e);
		char *path;

		if (f == NULL || *f == '\0') {
			ERR(e, "want a non-empty path");
			continue;
		}
		if (f[0] == '/' || strchr(c->file, '/') == NULL)
			path = xstrdup(f);
		else
			path = xasprintf("%.*s/%s", (int)(strrchr(c->file, '/') - c->file), c->file, f);
		if (access(path, R_OK) != 0)
			ERR(e, "%s: %s", path, strerror(errno));
		else
			bad += egress_shaping_load_json(&c->shaping, path, errs);
		free(path);
	}
	return bad;
}

static int
parse_egress(struct kconf *c, const config_setting_t *root, struct buf *errs)
{
	const config_setting_t *m;
	int bad = 0, i, n;
	size_t j, k;

	if ((m = config_setting_get_member(root, "sources")) != NULL) {
		if (!config_setting_is_list(m))
			return ERR(m, "want a list ( { name = \"ip-1\"; ... } )");
		n = config_setting_length(m);
		c->sources = xcalloc((size_t)n + 1, sizeof(*c->sources));
		for (i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
			struct egress_source *s = &c->sources[c->nsources];

			bad += egress_source_parse(s, e, errs);
			for (j = 0; j < c->nsources; j++)
				if (strcmp(c->sources[j].name, s->name) == 0)
					ERR(e, "source \"%s\" is defined twice", s->name);
			c->nsources++;
		}
	}
	if ((m = config_setting_get_member(root, "pools")) != NULL) {
		if (!config_setting_is_list(m))
				return ERR(m, "want a list ( { name = \"pool\"; entries = ( ... ); } )"), bad;
		n = config_setting_length(m);
		c->pools = xcalloc((size_t)n + 2, sizeof(*c->pools));
		for (i = 0; i < n; i++) {
			const config_setting_t *e = config_setting_get_elem(m, (unsigned)i);
			struct egress_pool *p = &c->pools[c->npools];

			bad += egress_pool_parse(p, e, errs);
			c->npools++;
			for (j = 0; j < p->n; j++)
				if (kconf_source(c, p->entries[j].name) == NULL &&
				    strcmp(p->entries[j].name, EGRESS_POOL_UNSPECIFIED) != 0)
					ERR(e, "pool \"%s\": no source named \"%s\"", p->name,
					    p->entries[j].name);
			for (k = 0; k + 1 < c->npools; k++)
				if (strcmp(c->pools[k].name, p->name) == 0)
					ERR(e, "pool \"%s\" is defined twice", p->name);
		}
	}
	/* The built-ins: source and pool "unspecified", unless the config names its own. */
	if (kconf_source(c, EGRESS_POOL_UNSPECIFIED) == NULL) {
		c->sources = xreallocarray(c->sources, c->nsources + 1, sizeof(*c->sources));
		egress_source_init(&c->sources[c->nsources++], EGRESS_POOL_UNSPECIFIED);
	}
	if (kconf_pool(c, EGRESS_POOL_UNSPECIFIED) == NULL) {
		c->pools = xreallocarray(c->pools, c->npools + 1, sizeof(*c->pools));
		egress_pool_init_unspecified(&c->pools[c->npools++]);
	}
	if ((m = config_setting_get_member(root, "shaping")) != NULL)
		bad += egress_shaping_parse(&c->shaping, m, errs);
	if ((m = config_setting_get_member(root, "shaping_file")) != NULL)
		bad += parse_shaping_files(c, m, errs);
	return bad;
}

struct kconf *
kconf_load(const char *file, struct buf *errs)
{
	static const char *const known[] = {"listen", "spool_dir", "log_dir", "control_socket", "control",
					    "pidfile", "hostname", "spool_sync", "shutdown_timeout",
					    "dns", "sources", "pools", "queues", "shaping", "shaping_file",
					    "tls_client", "mta_sts", NULL};
	struct kconf *c = xcalloc(1, sizeof(*c));
	config_t cfg;
	const config_setting_t *root, *m;
	char host[256];
	size_t i;
	int bad = 0;

	c->file = xstrdup(file);
	c->spool_sync_fs = 1;
	c->shutdown_timeout = 10;
	c->queues = xcalloc(1, sizeof(*c->queues));
	c->nqueues = 1;
	c->queues[0].name = xstrdup("default");
	c->queues[0].retry_interval = 20 * 60;
	c->queues[0].max_age = 7 * 86400;
	egress_shaping_init(&c->shaping);
	config_init(&cfg);
	if (config_read_file(&cfg, file) != CONFIG_TRUE) {
		if (config_error_type(&cfg) == CONFIG_ERR_FILE_IO)
			buf_appendf(errs, "%s:0: %s: %s\n", file, config_error_text(&cfg),
				    strerror(errno));
		else
			buf_appendf(errs, "%s:%d: syntax: %s\n",
				    config_error_file(&cfg) ? config_error_file(&cfg) : file,
				    config_error_line(&cfg), config_error_text(&cfg));
		config_destroy(&cfg);
		kconf_free(&c);
		return NULL;
	}
	root = config_root_setting(&cfg);
	bad += check_keys(root, known, errs);
	if ((m = config_setting_get_member(root, "listen")) != NULL)
		bad += parse_listen(c, m, errs);
	bad += get_str(root, "spool_dir", &c->spool_dir, errs);
	bad += get_str(root, "log_dir", &c->log_dir, errs);
	bad += get_str(root, "control_socket", &c->control_socket, errs);
	if ((m = config_setting_get_member(root, "control")) != NULL)
		bad += parse_control(c, m, errs);
	bad += get_str(root, "pidfile", &c->pidfile, errs);
	bad += get_str(root, "hostname", &c->hostname, errs);
	bad += get_dur(root, "shutdown_timeout", &c->shutdown_timeout, errs);
	if ((m = config_setting_get_member(root, "spool_sync")) != NULL) {
		const char *s = config_setting_get_string(m);

		if (s != NULL && strcmp(s, "syncfs") == 0)
			c->spool_sync_fs = 1;
		else if (s != NULL && strcmp(s, "fdatasync") == 0)
			c->spool_sync_fs = 0;
		else
			ERR(m, "want \"syncfs\" or \"fdatasync\"");
	}
	if ((m = config_setting_get_member(root, "dns")) != NULL)
		bad += parse_dns(c, m, errs);
	bad += tlspolicy_parse_config(c, root, errs);
	bad += parse_egress(c, root, errs);
	if ((m = config_setting_get_member(root, "queues")) != NULL)
		bad += parse_queues(c, m, errs);
	for (i = 0; i < c->nqueues; i++)
		if (c->queues[i].egress_pool != NULL && kconf_pool(c, c->queues[i].egress_pool) == NULL) {
			buf_appendf(errs, "%s:%d: queues: %s: egress_pool \"%s\" is not defined\n", file,
				    m != NULL ? config_setting_source_line(m) : 0, c->queues[i].name,
				    c->queues[i].egress_pool);
			bad++;
		}
	if (c->nlisten == 0) {
		buf_appendf(errs, "%s:0: listen: at least one listener is needed\n", file);
		bad++;
	}
	config_destroy(&cfg);
	if (c->spool_dir == NULL)
		c->spool_dir = xstrdup(DEFAULT_SPOOL_DIR);
	if (c->log_dir == NULL)
		c->log_dir = xstrdup(DEFAULT_LOG_DIR);
	if (c->hostname == NULL) {
		if (gethostname(host, sizeof(host)) != 0)
			snprintf(host, sizeof(host), "localhost");
		host[sizeof(host) - 1] = '\0';
		c->hostname = xstrdup(host);
	}
	for (i = 0; i < c->nlisten; i++)
		if (c->listen[i].hostname == NULL)
			c->listen[i].hostname = xstrdup(c->hostname);
	if (bad > 0 || errs->len > 0) {
		kconf_free(&c);
		return NULL;
	}
	return c;
}

static void
free_strv(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void
kconf_free(struct kconf **cp)
{
	struct kconf *c = *cp;
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nlisten; i++) {
		struct kconf_listen *l = &c->listen[i];

		free(l->address);
		cidr_list_free(&l->relay_hosts);
		free(l->hostname);
		free(l->tls_certificate);
		free(l->tls_private_key);
	}
	free(c->listen);
	free(c->file);
	free(c->spool_dir);
	free(c->log_dir);
	free(c->control_socket);
	free(c->control_uids);
	free(c->control_gids);
	free(c->pidfile);
	free(c->hostname);
	free_strv(c->dns_local_data, c->ndns_local_data);
	free_strv(c->dns_forwarders, c->ndns_forwarders);
	free_strv(c->dns_local_zones, c->ndns_local_zones);
	free(c->dns_trust_anchor_file);
	tlspolicy_free_config(c);
	for (i = 0; i < c->nsources; i++)
		egress_source_release(&c->sources[i]);
	free(c->sources);
	for (i = 0; i < c->npools; i++)
		egress_pool_release(&c->pools[i]);
	free(c->pools);
	egress_shaping_release(&c->shaping);
	for (i = 0; i < c->nqueues; i++) {
		free(c->queues[i].name);
		free(c->queues[i].egress_pool);
	}
	free(c->queues);
	free(c);
	*cp = NULL;
}

const struct kconf_queue *
kconf_queue_for(const struct kconf *c, const char *queue_name, const char *tenant,
		const char *domain)
{
	size_t i;

	(void)queue_name;
	if (tenant != NULL)
		for (i = 1; i < c->nqueues; i++)
			if (strncmp(c->queues[i].name, "tenant:", 7) == 0 &&
			    strcmp(c->queues[i].name + 7, tenant) == 0)
				return &c->queues[i];
	if (domain != NULL)
		for (i = 1; i < c->nqueues; i++)
			if (strncmp(c->queues[i].name, "domain:", 7) == 0 &&
			    strcasecmp(c->queues[i].name + 7, domain) == 0)
				return &c->queues[i];
	return &c->queues[0];
}

const struct egress_pool *
kconf_pool(const struct kconf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->npools; i++)
		if (strcmp(c->pools[i].name, name) == 0)
			return &c->pools[i];
	return NULL;
}

const struct egress_source *
kconf_source(const struct kconf *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nsources; i++)
		if (strcmp(c->sources[i].name, name) == 0)
			return &c->sources[i];
	return NULL;
}
