/*
 * spool.c: durable storage of accepted messages, one file per message.
 *
 * A file is a short text header (envelope, queue, size) ending in an empty
 * line, then the message bytes. Writes and their syncs run in batches on
 * libuv's thread pool: every message stored while a batch is on disk joins
 * the next batch, and one sync covers the whole batch (group commit). The
 * store callback, which sends the 250, runs only after the sync that
 * covers the file and its directory entry. A file whose length does not
 * match its header was cut short by a crash before its 250 and is removed
 * at recovery. Removal (final disposition) is batched the same way.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <uv.h>

#include "buf.h"
#include "kumo.h"
#include "log.h"

#include "kumod.h"

#define SPOOL_MAGIC "KUMO1"
#define SPOOL_MAX_INFLIGHT 4 /* batches on the thread pool at once (its size) */

enum item_kind { ITEM_STORE, ITEM_REWRITE, ITEM_REMOVE };

struct item {
	enum item_kind kind;
	char *path;
	struct buf header;
	struct blob *data; /* STORE / REWRITE */
	struct msg *m;	   /* STORE: handed back to cb */
	spool_done_cb cb;
	void *arg;
	int status;
};

struct batch {
	uv_work_t work;
	struct spool *sp;
	struct item **items;
	size_t n;
};

struct spool {
	uv_loop_t *loop;
	char *dir;
	int dirfd;
	int sync_fs;
	struct item **pending;
	size_t npending, apending;
	unsigned inflight;
	size_t inflight_items;
};

static void start_batch(struct spool *sp);

struct blob *
blob_new(const char *data, size_t len)
{
	char *p = xmalloc(len + 1);

	if (len > 0)
		memcpy(p, data, len);
	p[len] = '\0';
	return blob_take(p, len);
}

struct blob *
blob_take(char *data, size_t len)
{
	struct blob *b = xmalloc(sizeof(*b));

	b->refs = 1;
	b->len = len;
	b->data = data;
	return b;
}

struct blob *
blob_ref(struct blob *b)
{
	if (b != NULL)
		b->refs++;
	return b;
}

void
blob_unref(struct blob **bp)
{
	if (*bp != NULL && --(*bp)->refs == 0) {
		free((*bp)->data);
		free(*bp);
	}
	*bp = NULL;
}

struct msg *
msg_new(void)
{
	struct msg *m = xcalloc(1, sizeof(*m));

	m->heap_idx = (size_t)-1;
	return m;
}

void
msg_free(struct msg **mp)
{
	struct msg *m = *mp;
	size_t i;

	if (m == NULL)
		return;
	free(m->sender);
	for (i = 0; i < m->nrcpts; i++)
		free(m->rcpts[i]);
	free(m->rcpts);
	free(m->domain);
	free(m->tenant);
	free(m->campaign);
	free(m->queue);
	free(m->peer);
	blob_unref(&m->data);
	free(m);
	*mp = NULL;
}

/* Header values are single tokens without spaces or line breaks; others become '?'. */
static void
put_field(struct buf *out, const char *key, const char *val)
{
	const char *p;

	buf_puts(out, key);
	buf_putc(out, ' ');
	for (p = val != NULL ? val : ""; *p != '\0'; p++)
		buf_putc(out, (*p == '\n' || *p == '\r') ? '?' : *p);
	buf_putc(out, '\n');
}

void
spool_format_header(const struct msg *m, struct buf *out)
{
	size_t i;

	buf_appendf(out, "%s\nid %s\ncreated %.6f\nattempts %u\n", SPOOL_MAGIC, m->id, m->created,
		    m->attempts);
	put_field(out, "sender", m->sender);
	for (i = 0; i < m->nrcpts; i++)
		put_field(out, "rcpt", m->rcpts[i]);
	put_field(out, "domain", m->domain);
	if (m->tenant != NULL)
		put_field(out, "tenant", m->tenant);
	if (m->campaign != NULL)
		put_field(out, "campaign", m->campaign);
	put_field(out, "queue", m->queue);
	if (m->peer != NULL)
		put_field(out, "peer", m->peer);
	buf_appendf(out, "size %zu\n\n", m->data != NULL ? m->data->len : (size_t)0);
}

struct msg *
spool_parse(const char *bytes, size_t len)
{
	struct msg *m = msg_new();
	size_t off = 0, linelen, size = 0;
	int have_size = 0, first = 1;

	for (;;) {
		const char *line = bytes + off, *nl, *val;
		size_t klen;

		nl = memchr(line, '\n', len - off);
		if (nl == NULL)
			goto bad;
		linelen = (size_t)(nl - line);
		off += linelen + 1;
		if (linelen == 0)
			break;
		if (first) {
			if (linelen != strlen(SPOOL_MAGIC) || memcmp(line, SPOOL_MAGIC, linelen) != 0)
				goto bad;
			first = 0;
			continue;
		}
		val = memchr(line, ' ', linelen);
		if (val == NULL)
			goto bad;
		klen = (size_t)(val - line);
		val++;
#define KEY(k) (klen == strlen(k) && memcmp(line, k, klen) == 0)
		{
			char *v = xstrndup(val, linelen - klen - 1);

			if (KEY("id"))
				snprintf(m->id, sizeof(m->id), "%s", v);
			else if (KEY("created"))
				m->created = strtod(v, NULL);
			else if (KEY("attempts"))
				m->attempts = (unsigned)strtoul(v, NULL, 10);
			else if (KEY("sender")) {
				free(m->sender);
				m->sender = v, v = NULL;
			} else if (KEY("rcpt")) {
				m->rcpts = xreallocarray(m->rcpts, m->nrcpts + 1, sizeof(char *));
				m->rcpts[m->nrcpts++] = v, v = NULL;
			} else if (KEY("domain")) {
				free(m->domain);
				m->domain = v, v = NULL;
			} else if (KEY("tenant")) {
				free(m->tenant);
				m->tenant = v, v = NULL;
			} else if (KEY("campaign")) {
				free(m->campaign);
				m->campaign = v, v = NULL;
			} else if (KEY("queue")) {
				free(m->queue);
				m->queue = v, v = NULL;
			} else if (KEY("peer")) {
				free(m->peer);
				m->peer = v, v = NULL;
			} else if (KEY("size")) {
				char *end;

				errno = 0;
				size = strtoull(v, &end, 10);
				have_size = errno == 0 && *end == '\0' && end != v;
			}
			free(v);
		}
#undef KEY
	}
	if (!have_size || len - off != size || m->id[0] == '\0' || m->nrcpts == 0 ||
	    m->sender == NULL || m->domain == NULL || m->queue == NULL)
		goto bad;
	m->data = blob_new(bytes + off, size);
	return m;
bad:
	msg_free(&m);
	return NULL;
}

static char *
item_path(const struct spool *sp, const char *id)
{
	return xasprintf("%s/%s", sp->dir, id);
}

static void
enqueue(struct spool *sp, struct item *it)
{
	if (sp->npending == sp->apending) {
		sp->apending = sp->apending ? sp->apending * 2 : 64;
		sp->pending = xreallocarray(sp->pending, sp->apending, sizeof(*sp->pending));
	}
	sp->pending[sp->npending++] = it;
	if (sp->inflight < SPOOL_MAX_INFLIGHT)
		start_batch(sp);
}

struct spool *
spool_open(uv_loop_t *loop, const char *dir, int sync_fs, char **err_r)
{
	struct spool *sp;
	int fd;

	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		*err_r = xasprintf("spool_dir %s: %s", dir, strerror(errno));
		return NULL;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		*err_r = xasprintf("spool_dir %s: %s", dir, strerror(errno));
		return NULL;
	}
	sp = xcalloc(1, sizeof(*sp));
	sp->loop = loop;
	sp->dir = xstrdup(dir);
	sp->dirfd = fd;
	sp->sync_fs = sync_fs;
	return sp;
}

void
spool_store(struct spool *sp, struct msg *m, spool_done_cb cb, void *arg)
{
	struct item *it = xcalloc(1, sizeof(*it));

	it->kind = ITEM_STORE;
	it->path = item_path(sp, m->id);
	buf_init(&it->header, 0);
	spool_format_header(m, &it->header);
	it->data = blob_ref(m->data);
	it->m = m;
	it->cb = cb;
	it->arg = arg;
	enqueue(sp, it);
}

void
spool_rewrite(struct spool *sp, struct msg *m)
{
	struct item *it = xcalloc(1, sizeof(*it));

	it->kind = ITEM_REWRITE;
	it->path = item_path(sp, m->id);
	buf_init(&it->header, 0);
	spool_format_header(m, &it->header);
	it->data = blob_ref(m->data);
	enqueue(sp, it);
}

void
spool_remove(struct spool *sp, struct msg *m)
{
	char *path = item_path(sp, m->id);

	/*
	 * Unlinked at once, in the loop: a directory operation costs
	 * microseconds, and a removal waiting behind sync batches on the
	 * thread pool would be redelivered after a crash. It needs no sync of
	 * its own: the next batch's sync covers the directory, and a removal
	 * lost to a power failure only means a redelivery.
	 */
	if (unlink(path) != 0 && errno != ENOENT)
		log_error("spool: unlink %s: %s", path, strerror(errno));
	free(path);
}

static int
write_all(int fd, const struct buf *h, const struct blob *d)
{
	struct iovec iov[2];
	size_t total = h->len + (d != NULL ? d->len : 0), done = 0;

	while (done < total) {
		ssize_t n;
		int cnt = 0;

		if (done < h->len) {
			iov[cnt].iov_base = h->data + done;
			iov[cnt++].iov_len = h->len - done;
		}
		if (d != NULL && d->len > 0) {
			size_t doff = done > h->len ? done - h->len : 0;

			iov[cnt].iov_base = (char *)(uintptr_t)(d->data + doff);
			iov[cnt++].iov_len = d->len - doff;
		}
		n = writev(fd, iov, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		done += (size_t)n;
	}
	return 0;
}

/* Thread pool side: write and sync a batch. Touches only the items. */
static void
batch_work(uv_work_t *w)
{
	struct batch *b = w->data;
	struct spool *sp = b->sp;
	size_t i;
	int *fds;
	int dirty = 0;

	fds = xcalloc(b->n ? b->n : 1, sizeof(int));

	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];

		fds[i] = -1;
		if (it->kind == ITEM_REMOVE) {
			if (unlink(it->path) != 0 && errno != ENOENT)
				it->status = -errno;
			dirty = 1;
			continue;
		}
		{
			char *tmp = it->kind == ITEM_REWRITE ? xasprintf("%s.tmp", it->path) : NULL;
			int fd = open(tmp != NULL ? tmp : it->path,
				      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);

			if (fd < 0)
				it->status = -errno;
			else if ((it->status = write_all(fd, &it->header, it->data)) != 0) {
				close(fd);
				fd = -1;
			}
			if (fd >= 0 && tmp != NULL) {
				/* A rewrite must be durable before it replaces the old file. */
				if (fdatasync(fd) != 0 || rename(tmp, it->path) != 0)
					it->status = -errno;
			}
			free(tmp);
			fds[i] = fd;
			dirty = 1;
		}
	}
	if (sp->sync_fs) {
		if (dirty && syncfs(sp->dirfd) != 0) {
			int e = -errno;

			for (i = 0; i < b->n; i++)
				if (b->items[i]->status == 0)
					b->items[i]->status = e;
		}
	} else {
		for (i = 0; i < b->n; i++)
			if (fds[i] >= 0 && b->items[i]->status == 0 && fdatasync(fds[i]) != 0)
				b->items[i]->status = -errno;
		if (dirty && fsync(sp->dirfd) != 0) {
			int e = -errno;

			for (i = 0; i < b->n; i++)
				if (b->items[i]->status == 0)
					b->items[i]->status = e;
		}
	}
	for (i = 0; i < b->n; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	free(fds);
}

static void
batch_done(uv_work_t *w, int status)
{
	struct batch *b = w->data;
	struct spool *sp = b->sp;
	size_t i;

	sp->inflight--;
	sp->inflight_items -= b->n;
	for (i = 0; i < b->n; i++) {
		struct item *it = b->items[i];

		if (status != 0 && it->status == 0)
			it->status = status;
		if (it->status != 0)
			log_error("spool: %s: %s", it->path, kumo_strerror(it->status));
		if (it->kind == ITEM_STORE && it->status != 0)
			unlink(it->path); /* not acknowledged: never leave a half file */
		if (it->cb != NULL)
			it->cb(it->m, it->status, it->arg);
		buf_release(&it->header);
		blob_unref(&it->data);
		free(it->path);
		free(it);
	}
	free(b->items);
	free(b);
	if (sp->npending > 0 && sp->inflight < SPOOL_MAX_INFLIGHT)
		start_batch(sp);
}

static void
start_batch(struct spool *sp)
{
	struct batch *b;

	if (sp->npending == 0)
		return;
	b = xcalloc(1, sizeof(*b));
	b->sp = sp;
	b->items = sp->pending;
	b->n = sp->npending;
	sp->pending = NULL;
	sp->npending = sp->apending = 0;
	b->work.data = b;
	sp->inflight++;
	sp->inflight_items += b->n;
	if (uv_queue_work(sp->loop, &b->work, batch_work, batch_done) != 0)
		log_panic("spool: uv_queue_work failed");
}

size_t
spool_busy(const struct spool *sp)
{
	return sp->npending + sp->inflight_items;
}

static int
read_file(int dirfd, const char *name, struct buf *out)
{
	int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC);
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return KUMO_EIO;
	}
	buf_reset(out);
	for (;;) {
		char *p = buf_reserve(out, 65536);
		ssize_t n;

		if (p == NULL) {
			close(fd);
			return KUMO_ENOSPACE;
		}
		n = read(fd, p, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			close(fd);
			return -errno;
		}
		if (n == 0)
			break;
		buf_commit(out, (size_t)n);
	}
	close(fd);
	return 0;
}

int
spool_recover(struct spool *sp, spool_recover_cb cb, void *arg)
{
	DIR *d = opendir(sp->dir);
	struct dirent *de;
	struct buf b;
	int count = 0, removed = 0;

	if (d == NULL)
		return -errno;
	buf_init(&b, 0);
	while ((de = readdir(d)) != NULL) {
		struct msg *m;
		size_t nl = strlen(de->d_name);

		if (de->d_name[0] == '.')
			continue;
		if (nl > 4 && strcmp(de->d_name + nl - 4, ".tmp") == 0) {
			/* An unfinished rewrite: the old file is still whole. */
			unlinkat(sp->dirfd, de->d_name, 0);
			continue;
		}
		if (read_file(sp->dirfd, de->d_name, &b) != 0)
			continue;
		m = spool_parse(b.data, b.len);
		if (m == NULL || strcmp(m->id, de->d_name) != 0) {
			/* Cut short before its 250 (the length does not match): never acknowledged. */
			log_warn("spool: removing incomplete file %s/%s", sp->dir, de->d_name);
			unlinkat(sp->dirfd, de->d_name, 0);
			msg_free(&m);
			removed++;
			continue;
		}
		m->spooled = 1;
		cb(m, arg);
		count++;
	}
	closedir(d);
	buf_release(&b);
	if (removed > 0)
		fsync(sp->dirfd);
	return count;
}

void
spool_close(struct spool **spp)
{
	struct spool *sp = *spp;

	if (sp == NULL)
		return;
	close(sp->dirfd);
	free(sp->dir);
	free(sp->pending);
	free(sp);
	*spp = NULL;
}
