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
 * at recovery.
 *
 * Operations on one message are serialized: while a store or rewrite of a
 * file is in a batch, a later rewrite waits for it (a newer one replaces a
 * waiting one), and a removal is done when it completes. Without that, a
 * rewrite still on the thread pool would rename its file back into place
 * after the message was removed, and the next start would deliver it again.
 * The retry state (attempts and the next attempt's time) sits in
 * fixed-width fields at the start of the header and is updated in place
 * (spool_touch), without rewriting the message.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
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

/*
 * The fixed-width retry fields: "KUMO1\nattempts NNNNNNNNNN\ndue DDDDDDDDDDDDDDDDD\n".
 * spool_touch() overwrites them in place; the parser reads them anywhere.
 */
#define HDR_ATTEMPTS_OFF (sizeof(SPOOL_MAGIC "\nattempts ") - 1)
#define HDR_ATTEMPTS_W 10
#define HDR_DUE_OFF (HDR_ATTEMPTS_OFF + HDR_ATTEMPTS_W + sizeof("\ndue ") - 1)
#define HDR_DUE_W 17

enum item_kind { ITEM_STORE, ITEM_REWRITE };

struct slot;

struct item {
	enum item_kind kind;
	struct slot *slot;
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

/* The outstanding operations on one spool file (see the top of the file). */
struct slot {
	char id[40];
	struct item *active; /* in a batch (pending or on the thread pool) */
	struct item *next;   /* a rewrite waiting for it */
	int touch;	     /* then write these retry fields in place */
	unsigned attempts;
	double due;
	int remove; /* then unlink the file */
	struct slot *hnext;
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
	struct slot **slots; /* hash table by id, chained */
	size_t nslots, aslots;
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
	free(m->last_error);
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

	buf_appendf(out, "%s\nattempts %0*u\ndue %0*.3f\nid %s\ncreated %.6f\n", SPOOL_MAGIC,
		    HDR_ATTEMPTS_W, m->attempts, HDR_DUE_W, m->due_wall > 0 ? m->due_wall : 0.0, m->id,
		    m->created);
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
			else if (KEY("due"))
				m->due_wall = strtod(v, NULL);
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

static size_t
slot_hash(const char *id, size_t n)
{
	size_t h = 5381;

	while (*id != '\0')
		h = h * 33 + (unsigned char)*id++;
	return h & (n - 1);
}

static struct slot **
slot_find(struct spool *sp, const char *id)
{
	struct slot **sl;

	if (sp->aslots == 0)
		return NULL;
	for (sl = &sp->slots[slot_hash(id, sp->aslots)]; *sl != NULL; sl = &(*sl)->hnext)
		if (strcmp((*sl)->id, id) == 0)
			return sl;
	return NULL;
}

static struct slot *
slot_get(struct spool *sp, const char *id)
{
	struct slot **sl = slot_find(sp, id), *s;
	size_t i;

	if (sl != NULL)
		return *sl;
	if (sp->nslots >= sp->aslots) {
		/* Grow to keep chains short: rehash every slot into twice the buckets. */
		size_t n = sp->aslots ? sp->aslots * 2 : 256;
		struct slot **t = xcalloc(n, sizeof(*t));

		for (i = 0; i < sp->aslots; i++)
			while (sp->slots[i] != NULL) {
				struct slot *x = sp->slots[i];

				sp->slots[i] = x->hnext;
				x->hnext = t[slot_hash(x->id, n)];
				t[slot_hash(x->id, n)] = x;
			}
		free(sp->slots);
		sp->slots = t;
		sp->aslots = n;
	}
	s = xcalloc(1, sizeof(*s));
	snprintf(s->id, sizeof(s->id), "%s", id);
	s->hnext = sp->slots[slot_hash(id, sp->aslots)];
	sp->slots[slot_hash(id, sp->aslots)] = s;
	sp->nslots++;
	return s;
}

static void
slot_free(struct spool *sp, struct slot *s)
{
	struct slot **sl = slot_find(sp, s->id);

	if (sl != NULL) {
		*sl = s->hnext;
		sp->nslots--;
	}
	free(s);
}

static void
item_free(struct item *it)
{
	buf_release(&it->header);
	blob_unref(&it->data);
	free(it->path);
	free(it);
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

/* Make it the slot's active operation, or let it wait behind the active one. */
static void
slot_submit(struct spool *sp, struct item *it, const char *id)
{
	struct slot *s = slot_get(sp, id);

	it->slot = s;
	if (s->active == NULL) {
		s->active = it;
		enqueue(sp, it);
		return;
	}
	if (s->next != NULL)
		item_free(s->next); /* superseded: the newer rewrite has everything */
	s->next = it;
	s->touch = 0; /* the rewrite's header carries the retry fields */
}

static int
unlink_file(const struct spool *sp, const char *id)
{
	char *path = item_path(sp, id);
	int r = 0;

	if (unlink(path) != 0 && errno != ENOENT) {
		r = -errno;
		log_error("spool: unlink %s: %s", path, strerror(errno));
	}
	free(path);
	return r;
}

/* Overwrite the fixed-width retry fields of id's file; a missing file is not an error. */
static int
touch_file(const struct spool *sp, const char *id, unsigned attempts, double due)
{
	char a[HDR_ATTEMPTS_W + 1], d[HDR_DUE_W + 1], head[HDR_DUE_OFF + HDR_DUE_W];
	int fd = openat(sp->dirfd, id, O_RDWR | O_CLOEXEC), r = 0;
	ssize_t n;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	snprintf(a, sizeof(a), "%0*u", HDR_ATTEMPTS_W, attempts);
	snprintf(d, sizeof(d), "%0*.3f", HDR_DUE_W, due > 0 ? due : 0.0);
	/* Only a file written with the fixed-width layout is touched in place. */
	n = pread(fd, head, sizeof(head), 0);
	if (n != (ssize_t)sizeof(head) ||
	    memcmp(head, SPOOL_MAGIC "\nattempts ", HDR_ATTEMPTS_OFF) != 0 ||
	    memcmp(head + HDR_ATTEMPTS_OFF + HDR_ATTEMPTS_W, "\ndue ", HDR_DUE_OFF - HDR_ATTEMPTS_OFF - HDR_ATTEMPTS_W) != 0 ||
	    strlen(a) != HDR_ATTEMPTS_W || strlen(d) != HDR_DUE_W)
		r = KUMO_EINVAL;
	else if (pwrite(fd, a, HDR_ATTEMPTS_W, HDR_ATTEMPTS_OFF) != HDR_ATTEMPTS_W ||
		 pwrite(fd, d, HDR_DUE_W, HDR_DUE_OFF) != HDR_DUE_W)
		r = -errno;
	close(fd);
	return r;
}

/* The slot's active operation finished (on the loop): start what waits behind it. */
static void
slot_done(struct spool *sp, struct slot *s)
{
	s->active = NULL;
	if (s->remove) {
		if (s->next != NULL)
			item_free(s->next);
		unlink_file(sp, s->id);
		slot_free(sp, s);
		return;
	}
	if (s->next != NULL) {
		s->active = s->next;
		s->next = NULL;
		enqueue(sp, s->active);
		return;
	}
	if (s->touch)
		touch_file(sp, s->id, s->attempts, s->due);
	slot_free(sp, s);
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
	/* Two daemons on one spool would both deliver every message in it. */
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		*err_r = errno == EWOULDBLOCK
			     ? xasprintf("spool_dir %s is in use by another kumod", dir)
			     : xasprintf("spool_dir %s: lock: %s", dir, strerror(errno));
		close(fd);
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
	slot_submit(sp, it, m->id);
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
	slot_submit(sp, it, m->id);
}

int
spool_touch(struct spool *sp, struct msg *m)
{
	struct slot **sl = slot_find(sp, m->id), *s;

	if (sl == NULL)
		return touch_file(sp, m->id, m->attempts, m->due_wall);
	s = *sl;
	if (s->next != NULL) {
		/* A rewrite is waiting: give it the new retry fields instead. */
		buf_reset(&s->next->header);
		spool_format_header(m, &s->next->header);
		return 0;
	}
	s->touch = 1;
	s->attempts = m->attempts;
	s->due = m->due_wall;
	return 0;
}

void
spool_remove(struct spool *sp, struct msg *m)
{
	struct slot **sl = slot_find(sp, m->id);

	/*
	 * Unlinked at once, in the loop: a directory operation costs
	 * microseconds, and a removal waiting behind sync batches on the
	 * thread pool would be redelivered after a crash. It needs no sync of
	 * its own: the next batch's sync covers the directory, and a removal
	 * lost to a power failure only means a redelivery. If the file is
	 * being written, it goes when that write is done (slot_done).
	 */
	if (sl == NULL) {
		unlink_file(sp, m->id);
		return;
	}
	(*sl)->remove = 1;
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
		slot_done(sp, it->slot);
		item_free(it);
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
	for (size_t i = 0; i < sp->aslots; i++)
		while (sp->slots[i] != NULL) {
			struct slot *x = sp->slots[i];

			sp->slots[i] = x->hnext;
			if (x->next != NULL)
				item_free(x->next);
			free(x);
		}
	free(sp->slots);
	free(sp);
	*spp = NULL;
}
