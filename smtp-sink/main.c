/*
 * main.c: smtp-sink's command line, listeners, signals and shutdown. The
 * options edit the configuration and the verb table; the listeners are
 * plain non-blocking sockets polled by libuv, accepted by hand so that
 * --max-clients can stop accepting at the cap and resume on close.
 * Exit status: 0 after a clean shutdown, 2 for a usage or environment error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <uv.h>

#include "kumo.h"
#include "log.h"
#include "sink.h"

struct sink_config cfg;
uv_loop_t *sink_loop;

static uv_signal_t sig_usr1, sig_term, sig_int;
static uv_timer_t shutdown_timer;
static int shutdown_started;
static int listeners_paused;

static const char usage_text[] =
    "usage: smtp-sink [options]\n"
    "A lab SMTP/LMTP server: accepts and discards mail, injects faults, measures.\n"
    "\n"
    "Listening:\n"
    "  --listen ADDR:PORT        listen there (repeatable; [v6addr]:PORT; port 0 picks one);\n"
    "                            default 127.0.0.1:2525\n"
    "  --listen-tls ADDR:PORT    an implicit-TLS listener (repeatable)\n"
    "  --port-file FILE          write the bound ports, one line per listener in order\n"
    "                            (written then renamed: a readiness signal)\n"
    "  --hostname NAME           name in the banner, EHLO and certificate (default: host name)\n"
    "  --lmtp                    speak LMTP (LHLO, one reply per recipient after data)\n"
    "  --disable EXT[,EXT...]    do not offer PIPELINING, SIZE, 8BITMIME, SMTPUTF8,\n"
    "                            ENHANCEDSTATUSCODES, DSN, CHUNKING, STARTTLS or AUTH\n"
    "  --proxy-protocol          expect a HAProxy PROXY v1 or v2 header on every connection\n"
    "Limits:\n"
    "  --max-clients N           stop accepting at N open sessions, resume on close\n"
    "  --line-max N              command line cap in bytes with CRLF (16..1000, default 1000)\n"
    "  --max-message-size N      552 above N bytes (k/m/g suffixes; default 0: no limit)\n"
    "  --max-rcpt N              452 after N recipients per message (default: no limit)\n"
    "  --timeout DURATION        idle timeout, then 421 (default 300s; 0: none)\n"
    "Faults (VERB: CONNECT EHLO HELO STARTTLS AUTH MAIL RCPT DATA DOT BDAT RSET NOOP VRFY QUIT):\n"
    "  --delay VERB=DURATION[@PCT]  wait before answering (500ms, 30s, 2min, forever)\n"
    "  --reply VERB=\"CODE TEXT\"[@PCT]  answer with that reply instead\n"
    "  --seed N                  seed for the @PCT dice (repeatable runs)\n"
    "  --disconnect VERB         drop the connection instead of answering\n"
    "  --421 VERB                answer 421 and drop\n"
    "  --abort-data DURATION     after 354, read nothing more, then 550 and drop\n"
    "Measurement:\n"
    "  -c, --counter             show a running counter line on stdout\n"
    "  --stats-json FILE         write statistics on SIGUSR1 and at exit\n"
    "  --save-dir DIR            save each message with its envelope and session\n"
    "  --log-json FILE           one JSON line per transaction\n"
    "  --exit-after N            exit cleanly after N accepted messages\n"
    "TLS and AUTH:\n"
    "  --cert FILE, --key FILE   PEM certificate chain and key (default: self-signed)\n"
    "  --tls-priority STRING     GnuTLS priority (default NORMAL:-VERS-ALL:+VERS-TLS1.3:\n"
    "                            +VERS-TLS1.2)\n"
    "  --tls-client-cert request|require  ask the client for a certificate\n"
    "  --require-tls             530 5.7.0 for MAIL before STARTTLS\n"
    "  --auth-users FILE         user:password lines; offers AUTH PLAIN LOGIN\n"
    "  --require-auth            530 5.7.0 for MAIL before AUTH\n"
    "Other:\n"
    "  --busy-poll DURATION      after a read, keep polling this long before sleeping\n"
    "                            (e.g. 200us; default 0: sleep at once)\n"
    "  --coalesce DURATION       with several sessions open, pause up to this long before\n"
    "                            polling again, to serve many in one wake-up (default\n"
    "                            50us; 0: off)\n"
    "  -v, --verbose             log more (debug)\n"
    "  -h, --help                this text\n"
    "  --version                 print the version\n"
    "Exit status: 0 after a clean shutdown (SIGTERM, SIGINT, --exit-after), 2 on a usage\n"
    "or environment error.\n";

static void __attribute__((noreturn)) usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "smtp-sink: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'smtp-sink --help'.\n");
	exit(2);
}

static uint64_t
parse_count(const char *opt, const char *arg, uint64_t max, int suffixes)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;

	errno = 0;
	if (arg[0] < '0' || arg[0] > '9')
		goto bad;
	v = strtoull(arg, &end, 10);
	if (suffixes && *end != '\0' && end[1] == '\0') {
		switch (*end) {
		case 'k':
		case 'K':
			mult = 1024;
			end++;
			break;
		case 'm':
		case 'M':
			mult = 1024 * 1024;
			end++;
			break;
		case 'g':
		case 'G':
			mult = 1024 * 1024 * 1024;
			end++;
			break;
		}
	}
	if (errno != 0 || *end != '\0' || v > max / mult)
		goto bad;
	return v * mult;
bad:
	fprintf(stderr, "smtp-sink: %s: \"%s\": expected a number from 0 to %llu%s\n", opt, arg,
	        (unsigned long long)max, suffixes ? " (k, m, g suffixes allowed)" : "");
	exit(2);
}

static double
parse_dur(const char *opt, const char *arg)
{
	double v;

	if (sink_duration_parse(arg, &v) != 0)
		fprintf(stderr, "smtp-sink: %s: \"%s\": bad duration (e.g. 500ms, 30s, 2min)\n",
		        opt, arg);
	else
		return v;
	exit(2);
}

static void
parse_disable(const char *arg)
{
	static const struct {
		const char *name;
		unsigned bit;
	} exts[] = {
	    {"PIPELINING", EXT_PIPELINING},
	    {"SIZE", EXT_SIZE},
	    {"8BITMIME", EXT_8BITMIME},
	    {"SMTPUTF8", EXT_SMTPUTF8},
	    {"ENHANCEDSTATUSCODES", EXT_ENHANCEDSTATUSCODES},
	    {"DSN", EXT_DSN},
	    {"CHUNKING", EXT_CHUNKING},
	    {"STARTTLS", EXT_STARTTLS},
	    {"AUTH", EXT_AUTH},
	};
	char *copy = xstrdup(arg), *save = NULL;

	for (char *t = strtok_r(copy, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
		size_t i;

		for (i = 0; i < KUMO_NELEM(exts); i++)
			if (strcasecmp(t, exts[i].name) == 0)
				break;
		if (i == KUMO_NELEM(exts))
			usage_error(
			    "--disable: \"%s\": unknown extension (PIPELINING, SIZE, 8BITMIME, "
			    "SMTPUTF8, ENHANCEDSTATUSCODES, DSN, CHUNKING, STARTTLS, AUTH)",
			    t);
		cfg.ext &= ~exts[i].bit;
	}
	free(copy);
}

static void
add_listener(const char *spec, int tls)
{
	cfg.listeners =
	    xreallocarray(cfg.listeners, (size_t)cfg.nlisteners + 1, sizeof(*cfg.listeners));
	memset(&cfg.listeners[cfg.nlisteners], 0, sizeof(cfg.listeners[0]));
	cfg.listeners[cfg.nlisteners].spec = xstrdup(spec);
	cfg.listeners[cfg.nlisteners].tls = tls;
	cfg.listeners[cfg.nlisteners].fd = -1;
	cfg.nlisteners++;
}

/* Bind and listen for one "ADDR:PORT" / "[V6]:PORT"; log_fatal on failure. */
static void
open_listener(struct sink_listen *l)
{
	char host[INET6_ADDRSTRLEN + 2];
	const char *spec = l->spec, *port, *colon;
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sslen = sizeof(ss);
	size_t hlen;
	int fd, on = 1, rc;

	if (spec[0] == '[') {
		const char *rb = strchr(spec, ']');

		if (rb == NULL || rb[1] != ':')
			log_fatal("--listen: \"%s\": expected [IPv6]:PORT", spec);
		hlen = (size_t)(rb - spec - 1);
		colon = rb + 1;
		spec++;
	} else {
		colon = strrchr(spec, ':');
		if (colon == NULL)
			log_fatal("--listen: \"%s\": expected ADDR:PORT", spec);
		hlen = (size_t)(colon - spec);
	}
	if (hlen == 0 || hlen >= sizeof(host))
		log_fatal("--listen: \"%s\": bad address", l->spec);
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	port = colon + 1;
	memset(&hints, 0, sizeof(hints));
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
	hints.ai_socktype = SOCK_STREAM;
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc != 0)
		log_fatal("--listen: \"%s\": %s", l->spec, gai_strerror(rc));
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		log_fatal("--listen: %s: socket: %s", l->spec, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (ai->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
#ifdef __linux__
	/* Accepted sockets inherit TCP_NODELAY from the listener here: no setsockopt per accept. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
#endif
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
		log_fatal("--listen: %s: bind: %s", l->spec, strerror(errno));
	if (listen(fd, 1024) != 0)
		log_fatal("--listen: %s: listen: %s", l->spec, strerror(errno));
	freeaddrinfo(ai);
	if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0)
		log_fatal("--listen: %s: getsockname: %s", l->spec, strerror(errno));
	l->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
	                                         : ((struct sockaddr_in *)&ss)->sin_port);
	l->fd = fd;
}

static void on_accept(uv_poll_t *h, int status, int events);

void
sink_listeners_pause(int pause)
{
	if (pause == listeners_paused || shutdown_started)
		return;
	listeners_paused = pause;
	for (int i = 0; i < cfg.nlisteners; i++) {
		struct sink_listen *l = &cfg.listeners[i];

		if (pause)
			uv_poll_stop(&l->poll);
		else
			uv_poll_start(&l->poll, UV_READABLE, on_accept);
	}
}

static void
on_accept(uv_poll_t *h, int status, int events)
{
	struct sink_listen *l = h->data;

	(void)events;
	if (status < 0) {
		log_warn("listener %s: %s", l->spec, uv_strerror(status));
		return;
	}
	/* A bounded batch per wake-up keeps the loop fair to open sessions. */
	for (int i = 0; i < 64 && !shutdown_started; i++) {
		struct sockaddr_storage ss;
		socklen_t sslen = sizeof(ss);
		int fd;

		if (cfg.max_clients > 0 && sink_stats_current() >= cfg.max_clients) {
			sink_listeners_pause(1);
			return;
		}
		fd = accept4(l->fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("listener %s: accept: %s", l->spec, strerror(errno));
			return;
		}
#ifndef __linux__
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &(int){1}, sizeof(int));
#endif
		sink_session_start(fd, (struct sockaddr *)&ss, l->tls);
	}
	if (cfg.max_clients > 0 && sink_stats_current() >= cfg.max_clients)
		sink_listeners_pause(1);
}

static void
write_port_file(void)
{
	char *tmp = xasprintf("%s.tmp", cfg.port_file);
	FILE *fp = fopen(tmp, "w");

	if (fp == NULL)
		log_fatal("--port-file: %s: %s", tmp, strerror(errno));
	for (int i = 0; i < cfg.nlisteners; i++)
		fprintf(fp, "%d\n", cfg.listeners[i].port);
	if (fclose(fp) != 0 || rename(tmp, cfg.port_file) != 0)
		log_fatal("--port-file: %s: %s", cfg.port_file, strerror(errno));
	free(tmp);
}

static void
on_close_listener(uv_handle_t *h)
{
	struct sink_listen *l = h->data;

	close(l->fd);
	l->fd = -1;
}

static void
on_shutdown(uv_timer_t *t)
{
	(void)t;
	for (int i = 0; i < cfg.nlisteners; i++) {
		uv_poll_stop(&cfg.listeners[i].poll);
		uv_close((uv_handle_t *)&cfg.listeners[i].poll, on_close_listener);
	}
	sink_session_close_all();
	uv_close((uv_handle_t *)&sig_usr1, NULL);
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&shutdown_timer, NULL);
}

void
sink_shutdown(void)
{
	if (shutdown_started)
		return;
	shutdown_started = 1;
	/* On the next loop turn, so the reply that triggered it is written first. */
	uv_timer_start(&shutdown_timer, on_shutdown, 0, 0);
}

static void
on_signal(uv_signal_t *h, int signum)
{
	(void)h;
	if (signum == SIGUSR1) {
		if (cfg.stats_json != NULL)
			sink_stats_write(cfg.stats_json);
		return;
	}
	sink_shutdown();
}

enum {
	OPT_LISTEN = 256,
	OPT_LISTEN_TLS,
	OPT_PORT_FILE,
	OPT_HOSTNAME,
	OPT_LMTP,
	OPT_DISABLE,
	OPT_PROXY,
	OPT_MAX_CLIENTS,
	OPT_LINE_MAX,
	OPT_MAX_SIZE,
	OPT_MAX_RCPT,
	OPT_TIMEOUT,
	OPT_DELAY,
	OPT_REPLY,
	OPT_SEED,
	OPT_DISCONNECT,
	OPT_421,
	OPT_ABORT_DATA,
	OPT_STATS,
	OPT_SAVE_DIR,
	OPT_LOG_JSON,
	OPT_EXIT_AFTER,
	OPT_CERT,
	OPT_KEY,
	OPT_TLS_PRIORITY,
	OPT_CLIENT_CERT,
	OPT_REQUIRE_TLS,
	OPT_AUTH_USERS,
	OPT_REQUIRE_AUTH,
	OPT_VERSION,
	OPT_BUSY_POLL,
	OPT_COALESCE,
};

static const struct option long_opts[] = {
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"listen-tls", required_argument, NULL, OPT_LISTEN_TLS},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"hostname", required_argument, NULL, OPT_HOSTNAME},
    {"lmtp", no_argument, NULL, OPT_LMTP},
    {"disable", required_argument, NULL, OPT_DISABLE},
    {"proxy-protocol", no_argument, NULL, OPT_PROXY},
    {"max-clients", required_argument, NULL, OPT_MAX_CLIENTS},
    {"line-max", required_argument, NULL, OPT_LINE_MAX},
    {"max-message-size", required_argument, NULL, OPT_MAX_SIZE},
    {"max-rcpt", required_argument, NULL, OPT_MAX_RCPT},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"delay", required_argument, NULL, OPT_DELAY},
    {"reply", required_argument, NULL, OPT_REPLY},
    {"seed", required_argument, NULL, OPT_SEED},
    {"disconnect", required_argument, NULL, OPT_DISCONNECT},
    {"421", required_argument, NULL, OPT_421},
    {"abort-data", required_argument, NULL, OPT_ABORT_DATA},
    {"counter", no_argument, NULL, 'c'},
    {"stats-json", required_argument, NULL, OPT_STATS},
    {"save-dir", required_argument, NULL, OPT_SAVE_DIR},
    {"log-json", required_argument, NULL, OPT_LOG_JSON},
    {"exit-after", required_argument, NULL, OPT_EXIT_AFTER},
    {"cert", required_argument, NULL, OPT_CERT},
    {"key", required_argument, NULL, OPT_KEY},
    {"tls-priority", required_argument, NULL, OPT_TLS_PRIORITY},
    {"tls-client-cert", required_argument, NULL, OPT_CLIENT_CERT},
    {"require-tls", no_argument, NULL, OPT_REQUIRE_TLS},
    {"auth-users", required_argument, NULL, OPT_AUTH_USERS},
    {"require-auth", no_argument, NULL, OPT_REQUIRE_AUTH},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {"busy-poll", required_argument, NULL, OPT_BUSY_POLL},
    {"coalesce", required_argument, NULL, OPT_COALESCE},
    {NULL, 0, NULL, 0},
};

static void
parse_options(int argc, char **argv)
{
	char *err = NULL;
	int c;

	cfg.ext = EXT_PIPELINING | EXT_SIZE | EXT_8BITMIME | EXT_SMTPUTF8 |
	          EXT_ENHANCEDSTATUSCODES | EXT_DSN | EXT_CHUNKING | EXT_STARTTLS | EXT_AUTH;
	cfg.line_max = SMTP_LINE_MAX;
	cfg.idle_timeout = 300;
	cfg.abort_data = -1;
	cfg.busy_poll = 0;
	cfg.coalesce = 50e-6;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":chv", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_LISTEN:
			add_listener(optarg, 0);
			break;
		case OPT_LISTEN_TLS:
			add_listener(optarg, 1);
			break;
		case OPT_PORT_FILE:
			cfg.port_file = optarg;
			break;
		case OPT_HOSTNAME:
			if (optarg[0] == '\0' || strpbrk(optarg, " \r\n") != NULL ||
			    strlen(optarg) > 255)
				usage_error("--hostname: \"%s\": not a host name", optarg);
			cfg.hostname = xstrdup(optarg);
			break;
		case OPT_LMTP:
			cfg.lmtp = 1;
			break;
		case OPT_DISABLE:
			parse_disable(optarg);
			break;
		case OPT_PROXY:
			cfg.proxy = 1;
			break;
		case OPT_MAX_CLIENTS:
			cfg.max_clients = (int)parse_count("--max-clients", optarg, 1000000, 0);
			break;
		case OPT_LINE_MAX:
			cfg.line_max = parse_count("--line-max", optarg, SMTP_LINE_MAX, 0);
			if (cfg.line_max < 16)
				usage_error("--line-max: \"%s\": at least 16", optarg);
			break;
		case OPT_MAX_SIZE:
			cfg.max_msg_size =
			    parse_count("--max-message-size", optarg, (uint64_t)1 << 40, 1);
			break;
		case OPT_MAX_RCPT:
			cfg.max_rcpt = (int)parse_count("--max-rcpt", optarg, 1000000, 0);
			break;
		case OPT_TIMEOUT:
			cfg.idle_timeout = parse_dur("--timeout", optarg);
			if (cfg.idle_timeout < 0)
				cfg.idle_timeout = 0;
			break;
		case OPT_DELAY:
			if (sink_opt_delay(optarg, &err) != 0)
				usage_error("%s", err);
			break;
		case OPT_REPLY:
			if (sink_opt_reply(optarg, &err) != 0)
				usage_error("%s", err);
			break;
		case OPT_SEED:
			sink_rand_seed(parse_count("--seed", optarg, UINT64_MAX, 0));
			break;
		case OPT_DISCONNECT:
			if (sink_opt_flag(optarg, SVF_DISCONNECT, &err) != 0)
				usage_error("--disconnect: %s", err);
			break;
		case OPT_421:
			if (sink_opt_flag(optarg, SVF_421, &err) != 0)
				usage_error("--421: %s", err);
			break;
		case OPT_ABORT_DATA:
			cfg.abort_data = parse_dur("--abort-data", optarg);
			if (cfg.abort_data < 0)
				usage_error("--abort-data: \"%s\": needs a finite duration",
				            optarg);
			break;
		case 'c':
			cfg.counter = 1;
			break;
		case OPT_STATS:
			cfg.stats_json = optarg;
			break;
		case OPT_SAVE_DIR:
			cfg.save_dir = optarg;
			break;
		case OPT_LOG_JSON:
			cfg.log_json = optarg;
			break;
		case OPT_EXIT_AFTER:
			cfg.exit_after = parse_count("--exit-after", optarg, UINT64_MAX, 0);
			break;
		case OPT_CERT:
			cfg.cert = optarg;
			break;
		case OPT_KEY:
			cfg.key = optarg;
			break;
		case OPT_TLS_PRIORITY:
			cfg.tls_priority = optarg;
			break;
		case OPT_CLIENT_CERT:
			if (strcmp(optarg, "request") == 0)
				cfg.tls_client_cert = 1;
			else if (strcmp(optarg, "require") == 0)
				cfg.tls_client_cert = 2;
			else
				usage_error(
				    "--tls-client-cert: \"%s\": expected request or require",
				    optarg);
			break;
		case OPT_REQUIRE_TLS:
			cfg.require_tls = 1;
			break;
		case OPT_AUTH_USERS:
			cfg.auth_users = optarg;
			break;
		case OPT_REQUIRE_AUTH:
			cfg.require_auth = 1;
			break;
		case OPT_BUSY_POLL:
			cfg.busy_poll = parse_dur("--busy-poll", optarg);
			if (cfg.busy_poll < 0 || cfg.busy_poll > 1)
				usage_error("--busy-poll: \"%s\": from 0 to 1s", optarg);
			break;
		case OPT_COALESCE:
			cfg.coalesce = parse_dur("--coalesce", optarg);
			if (cfg.coalesce < 0 || cfg.coalesce > 0.01)
				usage_error("--coalesce: \"%s\": from 0 to 10ms", optarg);
			break;
		case 'v':
			cfg.verbose = 1;
			break;
		case 'h':
			fputs(usage_text, stdout);
			exit(0);
		case OPT_VERSION:
			printf("smtp-sink (%s) %s\n", PACKAGE_NAME, PACKAGE_VERSION);
			exit(0);
		case ':':
			usage_error("%s: missing argument", argv[optind - 1]);
		default:
			usage_error("%s: unknown option", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("\"%s\": unexpected argument (options only)", argv[optind]);
	if ((cfg.cert == NULL) != (cfg.key == NULL))
		usage_error("%s", "--cert and --key go together");
	if (cfg.require_auth && cfg.auth_users == NULL)
		usage_error("%s", "--require-auth needs --auth-users");
	if (cfg.require_tls && !(cfg.ext & EXT_STARTTLS))
		usage_error("%s", "--require-tls needs STARTTLS (do not --disable it)");
	if (cfg.hostname == NULL) {
		char h[256];

		if (gethostname(h, sizeof(h) - 1) != 0 || h[0] == '\0')
			memcpy(h, "smtp-sink.test", 15);
		h[sizeof(h) - 1] = '\0';
		cfg.hostname = xstrdup(h);
	}
	if (cfg.nlisteners == 0)
		add_listener("127.0.0.1:2525", 0);
}

int
main(int argc, char **argv)
{
	struct stat sb;
	int need_tls = 0;

	log_init("smtp-sink", 0, LOG_LEVEL_NOTICE);
	parse_options(argc, argv);
	if (cfg.verbose)
		log_set_level(LOG_LEVEL_DEBUG);
	sink_verbs_prepare((cfg.ext & EXT_ENHANCEDSTATUSCODES) != 0);
	signal(SIGPIPE, SIG_IGN);
	if (cfg.save_dir != NULL && (stat(cfg.save_dir, &sb) != 0 || !S_ISDIR(sb.st_mode)))
		log_fatal("--save-dir: %s: not a directory", cfg.save_dir);
	if (cfg.log_json != NULL && (cfg.log_json_fp = fopen(cfg.log_json, "a")) == NULL)
		log_fatal("--log-json: %s: %s", cfg.log_json, strerror(errno));
	if (cfg.auth_users != NULL)
		sink_auth_load(cfg.auth_users);
	for (int i = 0; i < cfg.nlisteners; i++)
		need_tls |= cfg.listeners[i].tls;
	if (need_tls || (cfg.ext & EXT_STARTTLS))
		sink_tls_init();

#ifdef PR_SET_TIMERSLACK
	/* --coalesce pauses are microseconds long: no 50 us default timer slack on top. */
	if (cfg.coalesce > 0)
		prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
#endif
	sink_loop = uv_default_loop();
	sink_stats_init();
	for (int i = 0; i < cfg.nlisteners; i++) {
		struct sink_listen *l = &cfg.listeners[i];

		open_listener(l);
		uv_poll_init_socket(sink_loop, &l->poll, l->fd);
		l->poll.data = l;
		uv_poll_start(&l->poll, UV_READABLE, on_accept);
	}
	uv_timer_init(sink_loop, &shutdown_timer);
	uv_signal_init(sink_loop, &sig_usr1);
	uv_signal_init(sink_loop, &sig_term);
	uv_signal_init(sink_loop, &sig_int);
	uv_signal_start(&sig_usr1, on_signal, SIGUSR1);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	if (cfg.port_file != NULL)
		write_port_file();
	log_info("listening on %d endpoint(s)", cfg.nlisteners);

	uv_run(sink_loop, UV_RUN_DEFAULT);

	if (cfg.counter)
		sink_stats_counter(1);
	if (cfg.stats_json != NULL)
		sink_stats_write(cfg.stats_json);
	if (cfg.log_json_fp != NULL)
		fclose(cfg.log_json_fp);
	uv_loop_close(sink_loop);
	sink_session_deinit();
	sink_tls_deinit();
	sink_stats_deinit();
	for (int i = 0; i < cfg.nlisteners; i++)
		free(cfg.listeners[i].spec);
	free(cfg.listeners);
	free(cfg.hostname);
	sink_verbs_free();
	return 0;
}
