/*
 * main.c: kumod's entry point: options, `--check-config`, start-up
 * (config, spool recovery, logs, resolver, listeners), the signals
 * (SIGTERM/SIGINT: bounded clean shutdown; SIGHUP: reload, keeping the old
 * configuration if the new one has errors), the pidfile, and the loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <uv.h>

#include "buf.h"
#include "egress.h"
#include "kumo.h"
#include "log.h"

#include "control.h"
#include "kumod.h"

#define DEFAULT_CONFIG SYSCONFDIR "/kumod.conf"

struct kumod kd;

static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t stop_timer;
static uint64_t stop_started;
static int aborted;
static struct kconf **retired; /* old configs: sessions may still point into them */
static size_t nretired;
static char *config_file;

static void
usage(FILE *fp)
{
	fprintf(fp,
		"usage: kumod [-f] [-c FILE] [-l LEVEL]\n"
		"       kumod --check-config FILE\n"
		"  -c, --config FILE     configuration (default %s)\n"
		"  -f, --foreground      stay in the foreground, log to stderr\n"
		"  -l, --log-level LEVEL debug, info, notice, warn or error (default info)\n"
		"  -t, --trace NAMES     comma-separated trace subsystems (smtp_client,dns,queue,...)\n"
		"      --check-config FILE  check FILE, print every problem, exit 2 if any\n"
		"  -h, --help            this text\n",
		DEFAULT_CONFIG);
}

/*
 * How long start-up, --check-config and a reload wait for the MX answers
 * that give shaping entries their sites (shaping.c).
 */
#define SHAPING_SITES_TIMEOUT_MS 5000

/*
 * Learn the sites of c's shaping entries and check that no two share one
 * (seed 002). Warnings (failed lookups) are appended to warns; a conflict
 * returns KUMO_EINVAL with *err_r set (caller frees).
 */
static int
shaping_sites(struct kconf *c, struct buf *warns, char **err_r)
{
	shaping_learn_sites(c, &c->shaping, SHAPING_SITES_TIMEOUT_MS, warns);
	return egress_shaping_check_sites(&c->shaping, err_r);
}

static int
check_config(const char *file)
{
	struct buf errs, warns;
	struct kconf *c;
	char *err = NULL;

	buf_init(&errs, 0);
	c = kconf_load(file, &errs);
	if (c == NULL) {
		fputs(errs.data != NULL ? errs.data : "", stderr);
		buf_release(&errs);
		return 2;
	}
	buf_init(&warns, 0);
	if (shaping_sites(c, &warns, &err) != 0) {
		fputs(warns.data != NULL ? warns.data : "", stderr);
		fprintf(stderr, "%s\n", err);
		free(err);
		buf_release(&warns);
		buf_release(&errs);
		kconf_free(&c);
		return 2;
	}
	if (warns.len > 0)
		fputs(warns.data, stderr);
	buf_release(&warns);
	printf("%s: ok (%zu listeners, %zu sources, %zu pools, %zu shaping domains)\n", file,
	       c->nlisten, c->nsources, c->npools, c->shaping.ndomains);
	kconf_free(&c);
	buf_release(&errs);
	return 0;
}

static void
write_pidfile(const char *path)
{
	char tmp[4096];
	FILE *fp;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	fp = fopen(tmp, "w");
	if (fp == NULL) {
		log_warn("pidfile %s: %s", tmp, strerror(errno));
		return;
	}
	fprintf(fp, "%ld\n", (long)getpid());
	if (fclose(fp) != 0 || rename(tmp, path) != 0)
		log_warn("pidfile %s: %s", path, strerror(errno));
}

static void
close_walk(uv_handle_t *h, void *arg)
{
	(void)arg;
	if (!uv_is_closing(h))
		uv_close(h, NULL);
}

static void
stop_tick(uv_timer_t *t)
{
	uint64_t waited = uv_now(kd.loop) - stop_started;

	(void)t;
	if (!aborted && waited > (uint64_t)(kd.conf->shutdown_timeout * 1000)) {
		log_warn("shutdown: %zu transactions still in flight after %.0fs; abandoning them "
			 "(they stay spooled)",
			 queue_inflight(), kd.conf->shutdown_timeout);
		queue_abort();
		aborted = 1;
	}
	if ((queue_connections() == 0 && spool_busy(kd.spool) == 0 && listener_sessions() == 0) ||
	    waited > (uint64_t)(kd.conf->shutdown_timeout * 1000) + 3000) {
		log_notice("shutdown complete: %llu received, %llu delivered, %llu bounced, "
			   "%llu transient failures, %llu expired, %zu still queued",
			   (unsigned long long)kd.received, (unsigned long long)kd.delivered,
			   (unsigned long long)kd.bounced, (unsigned long long)kd.transient,
			   (unsigned long long)kd.expired, queue_count());
		jlog_flush();
		queue_stop_timers();
		uv_walk(kd.loop, close_walk, NULL);
	}
}

static void
begin_shutdown(void)
{
	if (kd.stopping)
		return;
	kd.stopping = 1;
	log_notice("shutting down: %zu messages queued, %zu transactions in flight", queue_count(),
		   queue_inflight());
	listener_stop();
	control_server_stop(&kd.control);
	queue_shutdown();
	stop_started = uv_now(kd.loop);
	uv_timer_init(kd.loop, &stop_timer);
	uv_timer_start(&stop_timer, stop_tick, 0, 50);
}

int
kumod_reload(char **err_r)
{
	struct buf errs;
	struct kconf *c;

	if (kd.stopping) {
		*err_r = xstrdup("kumod is shutting down");
		return KUMO_EINVAL;
	}
	buf_init(&errs, 0);
	c = kconf_load(config_file, &errs);
	if (c == NULL) {
		char *line, *save = NULL;

		log_error("reload: %s has errors; keeping the running configuration", config_file);
		*err_r = xasprintf("%s has errors; the running configuration stays: %s", config_file,
				   errs.data != NULL ? errs.data : "?");
		for (line = strtok_r(errs.data, "\n", &save); line != NULL;
		     line = strtok_r(NULL, "\n", &save))
			log_error("reload: %s", line);
		buf_release(&errs);
		return KUMO_EINVAL;
	}
	buf_release(&errs);
	/* Sites already known (old entries, live MX answers) need no lookup now. */
	shaping_copy_sites(&c->shaping, &kd.conf->shaping);
	queue_known_sites(&c->shaping);
	{
		struct buf warns;
		char *line, *save = NULL, *serr = NULL;

		buf_init(&warns, 0);
		if (shaping_sites(c, &warns, &serr) != 0) {
			log_error("reload: %s: %s; keeping the running configuration", config_file, serr);
			*err_r = xasprintf("%s has errors; the running configuration stays: %s",
					   config_file, serr);
			free(serr);
			buf_release(&warns);
			kconf_free(&c);
			return KUMO_EINVAL;
		}
		for (line = warns.len > 0 ? strtok_r(warns.data, "\n", &save) : NULL; line != NULL;
		     line = strtok_r(NULL, "\n", &save))
			log_warn("reload: %s", line);
		buf_release(&warns);
	}
	retired = xreallocarray(retired, nretired + 1, sizeof(*retired));
	retired[nretired++] = kd.conf;
	kd.conf = c;
	listener_reconfigure(c);
	queue_reconfigure();
	log_notice("reload: %s loaded (listen addresses, spool_dir, log_dir, dns and the control "
		   "socket take effect at the next start)",
		   config_file);
	return 0;
}

static void
on_signal(uv_signal_t *h, int signum)
{
	(void)h;
	if (signum == SIGHUP) {
		char *err = NULL;

		if (kumod_reload(&err) != 0)
			free(err);
		return;
	}
	begin_shutdown();
}

static void
recovered(struct msg *m, void *arg)
{
	(void)arg;
	queue_insert(m, 1);
}

/*
 * Daemon mode: the launching process waits until the daemon is ready or has
 * failed, so a start-up error (an unwritable spool, a listen address in use)
 * reaches the operator's terminal and the exit status instead of only
 * syslog. The daemon writes its warnings and errors into ready_fd while it
 * starts, then one NUL byte when it is up; EOF without the NUL means it
 * died starting.
 */
static int ready_fd = -1;

static void
startup_sink(enum log_level level, const char *line, void *arg)
{
	static const int prio[] = {[LOG_LEVEL_DEBUG] = LOG_DEBUG, [LOG_LEVEL_INFO] = LOG_INFO,
				   [LOG_LEVEL_NOTICE] = LOG_NOTICE, [LOG_LEVEL_WARN] = LOG_WARNING,
				   [LOG_LEVEL_ERROR] = LOG_ERR};

	(void)arg;
	/* To syslog as usual, then a copy of warnings and errors to the launcher. */
	syslog((unsigned)level < KUMO_NELEM(prio) ? prio[level] : LOG_ERR, "%s", line);
	if (level >= LOG_LEVEL_WARN && ready_fd >= 0) {
		char out[2200];
		int n = snprintf(out, sizeof(out), "kumod: %s: %s\n", log_level_str(level), line);

		if (n > 0 && write(ready_fd, out, (size_t)n < sizeof(out) ? (size_t)n : sizeof(out) - 1) < 0)
			ready_fd = -1; /* the launcher is gone: nobody to tell */
	}
}

/* Tell the launcher the daemon is up; its own logging goes to syslog only. */
static void
startup_done(void)
{
	if (ready_fd < 0)
		return;
	log_set_sink(NULL, NULL);
	if (write(ready_fd, "", 1) < 0) {
		/* the launcher went away first: nothing to tell */
	}
	close(ready_fd);
	ready_fd = -1;
}

/* The launcher's side: relay what the daemon says, exit 0 once it is up, 2 if it died. */
static void __attribute__((noreturn))
launcher_wait(int fd)
{
	char chunk[4096];
	ssize_t n;
	int up = 0;

	while ((n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (chunk[n - 1] == '\0') {
			up = 1;
			n--;
		}
		if (n > 0 && write(STDERR_FILENO, chunk, (size_t)n) < 0)
			break;
		if (up)
			break;
	}
	if (!up)
		fprintf(stderr, "kumod: the daemon did not start (its errors are above and in syslog)\n");
	_exit(up ? 0 : 2);
}

static void
daemonize(void)
{
	int p[2], fd;
	pid_t pid;

	if (pipe(p) != 0)
		log_fatal("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		log_fatal("fork: %s", strerror(errno));
	if (pid > 0) {
		close(p[1]);
		launcher_wait(p[0]);
	}
	close(p[0]);
	setsid();
	pid = fork();
	if (pid < 0)
		log_fatal("fork: %s", strerror(errno));
	if (pid > 0)
		_exit(0);
	ready_fd = p[1];
	fcntl(ready_fd, F_SETFD, FD_CLOEXEC);
	log_set_sink(startup_sink, NULL);
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"foreground", no_argument, NULL, 'f'},
		{"log-level", required_argument, NULL, 'l'},
		{"trace", required_argument, NULL, 't'},
		{"check-config", required_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct buf errs;
	char *err = NULL;
	int foreground = 0, level = LOG_LEVEL_INFO, ch, n, r;
	unsigned trace = 0;

	config_file = xstrdup(DEFAULT_CONFIG);
	while ((ch = getopt_long(argc, argv, "c:fl:t:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			free(config_file);
			config_file = xstrdup(optarg);
			break;
		case 'f':
			foreground = 1;
			break;
		case 'l':
			level = log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "kumod: unknown log level \"%s\"\n", optarg);
				return 2;
			}
			break;
		case 't': {
			char *copy = xstrdup(optarg), *tok, *save = NULL;

			for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
				unsigned bit = log_trace_parse(tok);

				if (bit == 0) {
					fprintf(stderr, "kumod: unknown trace subsystem \"%s\"\n", tok);
					return 2;
				}
				trace |= bit;
			}
			free(copy);
			break;
		}
		case 'C':
			return check_config(optarg);
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	log_init("kumod", !foreground, (enum log_level)level);
	ctlcmds_set_trace(trace);
	kd.foreground = foreground;
	buf_init(&errs, 0);
	kd.conf = kconf_load(config_file, &errs);
	if (kd.conf == NULL) {
		fputs(errs.data != NULL ? errs.data : "", stderr);
		return 2;
	}
	buf_release(&errs);
	if (!foreground)
		daemonize();
	/* Before any message is routed: the sites shaping entries speak for (seed 002). */
	{
		struct buf warns;
		char *line, *save = NULL;

		buf_init(&warns, 0);
		if (shaping_sites(kd.conf, &warns, &err) != 0)
			log_fatal("%s", err);
		for (line = warns.len > 0 ? strtok_r(warns.data, "\n", &save) : NULL; line != NULL;
		     line = strtok_r(NULL, "\n", &save))
			log_warn("%s", line);
		buf_release(&warns);
	}
	signal(SIGPIPE, SIG_IGN);
	/* The spool's fsync batches: a few threads so a slow sync does not stall the next batch. */
	setenv("UV_THREADPOOL_SIZE", "4", 0);
	kd.loop = uv_default_loop();
	kd.spool = spool_open(kd.loop, kd.conf->spool_dir, kd.conf->spool_sync_fs, &err);
	if (kd.spool == NULL)
		log_fatal("%s", err);
	if (jlog_open(kd.conf->log_dir, &err) != 0)
		log_fatal("%s", err);
	if (queue_start(&kd, &err) != 0)
		log_fatal("%s", err);
	n = spool_recover(kd.spool, recovered, NULL);
	if (n < 0)
		log_fatal("spool recovery in %s: %s", kd.conf->spool_dir, kumo_strerror(n));
	if (n > 0)
		log_notice("recovered %d messages from %s", n, kd.conf->spool_dir);
	if (listener_start(&kd, &err) != 0)
		log_fatal("%s", err);
	if (kd.conf->control_socket != NULL) {
		struct control_opts co = {.max_clients = kd.conf->control_max_clients,
					  .allowed_uids = kd.conf->control_uids,
					  .n_allowed_uids = kd.conf->ncontrol_uids,
					  .allowed_gids = kd.conf->control_gids,
					  .n_allowed_gids = kd.conf->ncontrol_gids};

		if (control_server_start(kd.loop, kd.conf->control_socket, &co, ctlcmds_table(), &kd,
					 &kd.control, &err) != 0)
			log_fatal("control socket: %s", err);
	}
	uv_signal_init(kd.loop, &sig_term);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_init(kd.loop, &sig_int);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_init(kd.loop, &sig_hup);
	uv_signal_start(&sig_hup, on_signal, SIGHUP);
	if (kd.conf->pidfile != NULL)
		write_pidfile(kd.conf->pidfile);
	log_notice("kumod started: spool %s, logs %s", kd.conf->spool_dir, kd.conf->log_dir);
	startup_done();
	r = uv_run(kd.loop, UV_RUN_DEFAULT);
	(void)r;
	uv_loop_close(kd.loop);
	queue_free_all();
	tlspolicy_free();
	listener_free();
	jlog_close();
	if (kd.conf->pidfile != NULL)
		unlink(kd.conf->pidfile);
	spool_close(&kd.spool);
	while (nretired > 0)
		kconf_free(&retired[--nretired]);
	free(retired);
	kconf_free(&kd.conf);
	free(config_file);
	return 0;
}
