/*
 * mtasts.c: MTA-STS (RFC 8461), see mtasts.h. Everything a peer controls
 * (the TXT record, the HTTPS response, the policy document) is parsed by
 * hand-written, total scanners over explicit lengths, with the grammar of
 * RFC 8461 3.1 and 3.2; values quoted in error messages are escaped and
 * truncated so a hostile document cannot put control bytes into our logs.
 * The fetch is one blocking libcurl easy handle per call, so it is safe in
 * any worker thread once mtasts_global_init() has run.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "buf.h"
#include "kumo.h"
#include "mtasts.h"

#define CACHE_DEFAULT_MAX 10000
#define CACHE_MIN_BUCKETS 64
#define QUOTE_MAX 64 /* bytes of peer data quoted in an error message */

/* ---- small ASCII helpers (no locale, no sign trouble) ---- */

static int
is_alpha(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int
is_digit(int c)
{
	return c >= '0' && c <= '9';
}

static int
is_alnum(int c)
{
	return is_alpha(c) || is_digit(c);
}

static int
is_wsp(int c)
{
	return c == ' ' || c == '\t';
}

static int
to_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

static int
ascii_ncaseeq(const char *a, const char *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (to_lower((unsigned char)a[i]) != to_lower((unsigned char)b[i]))
			return 0;
	return 1;
}

/* Copy peer bytes into dst as printable text (\xHH escapes), truncated with "...". */
static void
quote(char *dst, size_t dstsz, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i >= QUOTE_MAX || o + 8 >= dstsz) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			dst[o++] = (char)c;
		} else {
			dst[o++] = '\\';
			dst[o++] = 'x';
			dst[o++] = hex[c >> 4];
			dst[o++] = hex[c & 15];
		}
	}
	dst[o] = '\0';
}

#define QUOTE_BUF (QUOTE_MAX * 4 + 8)

static void set_err(char **err_r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
set_err(char **err_r, const char *fmt, ...)
{
	va_list ap;
	struct buf b;

	if (err_r == NULL)
		return;
	buf_init(&b, 0);
	va_start(ap, fmt);
	(void)buf_vappendf(&b, fmt, ap);
	va_end(ap);
	free(*err_r);
	*err_r = buf_steal(&b, NULL);
	buf_release(&b);
}

/*
 * Is [s, s+n) a domain name as RFC 5321 spells it (letter-digit-hyphen
 * labels of 1..63 bytes, not starting or ending with '-', 253 bytes in all)?
 */
static int
domain_valid(const char *s, size_t n)
{
	size_t label = 0;

	if (n == 0 || n > 253)
		return 0;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)s[i];
		if (c == '.') {
			if (label == 0 || s[i - 1] == '-')
				return 0;
			label = 0;
			continue;
		}
		if (!is_alnum(c) && c != '-')
			return 0;
		if (c == '-' && label == 0)
			return 0;
		if (++label > 63)
			return 0;
	}
	return label > 0 && s[n - 1] != '-';
}

const char *
mtasts_mode_str(enum mtasts_mode mode)
{
	switch (mode) {
	case MTASTS_MODE_NONE:
		return "none";
	case MTASTS_MODE_TESTING:
		return "testing";
	case MTASTS_MODE_ENFORCE:
		return "enforce";
	}
	return "unknown";
}

/* ---- the TXT record (RFC 8461 3.1) ---- */

/* Does the record begin with the version field "v=STSv1" (then a delimiter or the end)? */
static int
txt_is_sts(const char *r)
{
	return strncmp(r, "v=STSv1", 7) == 0 &&
	       (r[7] == '\0' || r[7] == ';' || is_wsp((unsigned char)r[7]));
}

/* The value bytes of an sts-ext-value: visible ASCII except '=' and ';'. */
static int
txt_value_char(int c)
{
	return c >= 0x21 && c <= 0x7e && c != '=' && c != ';';
}

/*
 * Parse one record that begins with v=STSv1:
 *   sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
 *   sts-field-delim = *WSP ";" *WSP
 * The first id wins, like the policy keys.
 */
static int
txt_parse_one(const char *r, char *id_r, char **err_r)
{
	char q[QUOTE_BUF];
	size_t n = strlen(r), i = 7, fields = 0;
	int have_id = 0;

	for (;;) {
		size_t name, name_len, val, val_len;

		while (i < n && is_wsp((unsigned char)r[i]))
			i++;
		if (i == n)
			break;
		if (r[i] != ';') {
			quote(q, sizeof(q), r + i, n - i);
			set_err(err_r, "TXT record: expected ';' at offset %zu: \"%s\"", i, q);
			return KUMO_EPARSE;
		}
		i++;
		while (i < n && is_wsp((unsigned char)r[i]))
			i++;
		if (i == n)
			break; /* a trailing delimiter is allowed */
		name = i;
		if (!is_alnum((unsigned char)r[i])) {
			quote(q, sizeof(q), r + i, n - i);
			set_err(err_r, "TXT record: bad field name at offset %zu: \"%s\"", i, q);
			return KUMO_EPARSE;
		}
		while (i < n &&
		       (is_alnum((unsigned char)r[i]) || r[i] == '_' || r[i] == '-' || r[i] == '.'))
			i++;
		name_len = i - name;
		if (name_len > 32 || i == n || r[i] != '=') {
			quote(q, sizeof(q), r + name, n - name);
			set_err(err_r, "TXT record: expected name=value at offset %zu: \"%s\"",
			        name, q);
			return KUMO_EPARSE;
		}
		val = ++i;
		while (i < n && txt_value_char((unsigned char)r[i]))
			i++;
		val_len = i - val;
		if (i < n && r[i] != ';' && !is_wsp((unsigned char)r[i])) {
			quote(q, sizeof(q), r + i, n - i);
			set_err(err_r, "TXT record: unexpected character at offset %zu: \"%s\"", i,
			        q);
			return KUMO_EPARSE;
		}
		if (val_len == 0) {
			quote(q, sizeof(q), r + name, name_len);
			set_err(err_r, "TXT record: %s: empty value", q);
			return KUMO_EPARSE;
		}
		fields++;
		if (name_len == 2 && memcmp(r + name, "id", 2) == 0 && !have_id) {
			size_t k;
			for (k = 0; k < val_len && is_alnum((unsigned char)r[val + k]); k++)
				;
			if (k != val_len || val_len > MTASTS_ID_MAX) {
				quote(q, sizeof(q), r + val, val_len);
				set_err(err_r,
				        "TXT record: id: \"%s\": must be 1 to 32 letters or digits",
				        q);
				return KUMO_EPARSE;
			}
			memcpy(id_r, r + val, val_len);
			id_r[val_len] = '\0';
			have_id = 1;
		}
	}
	if (!have_id) {
		set_err(err_r, "TXT record: no id field");
		return KUMO_EPARSE;
	}
	(void)fields;
	return 0;
}

int
mtasts_txt_parse(const char *const *records, size_t count, char *id_r, char **err_r)
{
	const char *found = NULL;
	size_t matches = 0;

	id_r[0] = '\0';
	for (size_t i = 0; i < count; i++) {
		if (records[i] != NULL && txt_is_sts(records[i])) {
			matches++;
			if (found == NULL)
				found = records[i];
		}
	}
	if (matches == 0) {
		set_err(err_r, "no TXT record begins with v=STSv1");
		return KUMO_ENOTFOUND;
	}
	if (matches > 1) {
		set_err(err_r,
		        "%zu TXT records begin with v=STSv1; RFC 8461 3.1 allows exactly one",
		        matches);
		return KUMO_EPARSE;
	}
	return txt_parse_one(found, id_r, err_r);
}

/* ---- the policy document (RFC 8461 3.2) ---- */

void
mtasts_policy_clear(struct mtasts_policy *policy)
{
	if (policy == NULL)
		return;
	for (size_t i = 0; i < policy->mx_count; i++)
		free(policy->mx[i]);
	free(policy->mx);
	memset(policy, 0, sizeof(*policy));
	policy->mode = MTASTS_MODE_NONE;
}

void
mtasts_policy_move(struct mtasts_policy *dst, struct mtasts_policy *src)
{
	if (dst == src)
		return;
	mtasts_policy_clear(dst);
	*dst = *src;
	memset(src, 0, sizeof(*src));
	src->mode = MTASTS_MODE_NONE;
}

static int
key_is(const char *key, size_t key_len, const char *name)
{
	return strlen(name) == key_len && memcmp(key, name, key_len) == 0;
}

/* Add a validated mx pattern (lower-cased, one trailing dot dropped). 0 or KUMO_EPARSE. */
static int
policy_add_mx(struct mtasts_policy *p, const char *v, size_t n)
{
	size_t skip = 0;
	char *mx;

	if (n > 0 && v[n - 1] == '.')
		n--;
	if (n >= 2 && v[0] == '*' && v[1] == '.')
		skip = 2;
	if (!domain_valid(v + skip, n - skip))
		return KUMO_EPARSE;
	mx = xstrndup(v, n);
	for (size_t i = 0; i < n; i++)
		mx[i] = (char)to_lower((unsigned char)mx[i]);
	p->mx = xreallocarray(p->mx, p->mx_count + 1, sizeof(*p->mx));
	p->mx[p->mx_count++] = mx;
	return 0;
}

/*
 * One "key: value" line, CR/LF already removed. seen[] tracks first
 * occurrences of version, mode and max_age (later ones are ignored).
 *   sts-policy-field = key ":" *WSP value, then *WSP before the line end
 */
static int
policy_line(struct mtasts_policy *p, int seen[3], size_t line_no, const char *s, size_t n,
            char **err_r)
{
	char q[QUOTE_BUF], k[QUOTE_BUF];
	size_t i = 0, key_len, v, vn;

	if (is_wsp((unsigned char)s[0])) {
		set_err(err_r, "line %zu: leading whitespace", line_no);
		return KUMO_EPARSE;
	}
	if (!is_alnum((unsigned char)s[0])) {
		quote(q, sizeof(q), s, n);
		set_err(err_r, "line %zu: expected \"key: value\", got \"%s\"", line_no, q);
		return KUMO_EPARSE;
	}
	while (i < n &&
	       (is_alnum((unsigned char)s[i]) || s[i] == '_' || s[i] == '-' || s[i] == '.'))
		i++;
	key_len = i;
	if (i == n || s[i] != ':' || key_len > 32) {
		quote(q, sizeof(q), s, n);
		set_err(err_r, "line %zu: expected \"key: value\", got \"%s\"", line_no, q);
		return KUMO_EPARSE;
	}
	quote(k, sizeof(k), s, key_len);
	i++;
	while (i < n && is_wsp((unsigned char)s[i]))
		i++;
	v = i;
	vn = n - v;
	while (vn > 0 && is_wsp((unsigned char)s[v + vn - 1]))
		vn--;
	if (vn == 0) {
		set_err(err_r, "line %zu: %s: empty value", line_no, k);
		return KUMO_EPARSE;
	}
	/* sts-policy-vchar and SP inside the value; bytes >= 0x80 pass unchecked (UTF-8 allowed).
	 */
	for (size_t j = v; j < v + vn; j++) {
		unsigned char c = (unsigned char)s[j];
		if (c < 0x20 || c == 0x7f) {
			set_err(err_r, "line %zu: %s: control character 0x%02x in value", line_no,
			        k, c);
			return KUMO_EPARSE;
		}
	}
	quote(q, sizeof(q), s + v, vn);

	if (key_is(s, key_len, "version")) {
		if (seen[0]++)
			return 0;
		if (!(vn == 5 && memcmp(s + v, "STSv1", 5) == 0)) {
			set_err(err_r, "line %zu: version: \"%s\": must be STSv1", line_no, q);
			return KUMO_EPARSE;
		}
	} else if (key_is(s, key_len, "mode")) {
		if (seen[1]++)
			return 0;
		if (vn == 7 && memcmp(s + v, "enforce", 7) == 0)
			p->mode = MTASTS_MODE_ENFORCE;
		else if (vn == 7 && memcmp(s + v, "testing", 7) == 0)
			p->mode = MTASTS_MODE_TESTING;
		else if (vn == 4 && memcmp(s + v, "none", 4) == 0)
			p->mode = MTASTS_MODE_NONE;
		else {
			set_err(err_r, "line %zu: mode: \"%s\": must be enforce, testing or none",
			        line_no, q);
			return KUMO_EPARSE;
		}
	} else if (key_is(s, key_len, "max_age")) {
		unsigned long long age = 0;
		if (seen[2]++)
			return 0;
		if (vn > 10) {
			set_err(err_r, "line %zu: max_age: \"%s\": at most 10 digits", line_no, q);
			return KUMO_EPARSE;
		}
		for (size_t j = v; j < v + vn; j++) {
			if (!is_digit((unsigned char)s[j])) {
				set_err(err_r, "line %zu: max_age: \"%s\": not a number of seconds",
				        line_no, q);
				return KUMO_EPARSE;
			}
			age = age * 10 + (unsigned)(s[j] - '0');
		}
		if (age > MTASTS_MAX_AGE_CAP) {
			age = MTASTS_MAX_AGE_CAP;
			p->max_age_capped = 1;
		}
		p->max_age = (unsigned long)age;
	} else if (key_is(s, key_len, "mx")) {
		if (policy_add_mx(p, s + v, vn) < 0) {
			set_err(err_r, "line %zu: mx: \"%s\": not a host name or *.domain pattern",
			        line_no, q);
			return KUMO_EPARSE;
		}
	}
	/* Any other key is an extension: ignored (RFC 8461 3.2). */
	return 0;
}

int
mtasts_policy_parse(const char *text, size_t len, struct mtasts_policy *policy, char **err_r)
{
	const char *p, *end;
	size_t line_no = 0;
	int seen[3] = {0, 0, 0}, rc = 0;

	memset(policy, 0, sizeof(*policy));
	policy->mode = MTASTS_MODE_NONE;
	if (text == NULL)
		text = "", len = 0;
	p = text;
	end = text + len;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *lend = nl ? nl : end;
		const char *next = nl ? nl + 1 : end;

		line_no++;
		if (lend > p && lend[-1] == '\r')
			lend--; /* sts-policy-term = LF / CRLF */
		/* Empty lines are not in the ABNF; we skip them (editors leave them at the end). */
		if (lend > p) {
			rc = policy_line(policy, seen, line_no, p, (size_t)(lend - p), err_r);
			if (rc < 0)
				goto fail;
		}
		p = next;
	}
	rc = KUMO_EPARSE;
	if (!seen[0]) {
		set_err(err_r, "no version field");
		goto fail;
	}
	if (!seen[1]) {
		set_err(err_r, "no mode field");
		goto fail;
	}
	if (!seen[2]) {
		set_err(err_r, "no max_age field");
		goto fail;
	}
	if (policy->mode != MTASTS_MODE_NONE && policy->mx_count == 0) {
		set_err(err_r, "mode %s needs at least one mx field",
		        mtasts_mode_str(policy->mode));
		goto fail;
	}
	return 0;
fail:
	mtasts_policy_clear(policy);
	return rc;
}

/* ---- MX matching and the TLS decision ---- */

int
mtasts_mx_match(const struct mtasts_policy *policy, const char *mx_host)
{
	size_t n;

	if (policy == NULL || mx_host == NULL)
		return 0;
	n = strlen(mx_host);
	if (n > 0 && mx_host[n - 1] == '.')
		n--;
	if (n == 0)
		return 0;
	for (size_t i = 0; i < policy->mx_count; i++) {
		const char *pat = policy->mx[i];
		size_t pn = strlen(pat);

		if (pn >= 2 && pat[0] == '*' && pat[1] == '.') {
			/* The suffix includes its dot; what comes before it is one non-empty label.
			 */
			const char *suffix = pat + 1;
			size_t sn = pn - 1, head;
			if (n <= sn || !ascii_ncaseeq(mx_host + n - sn, suffix, sn))
				continue;
			head = n - sn;
			if (memchr(mx_host, '.', head) == NULL)
				return 1;
		} else if (n == pn && ascii_ncaseeq(mx_host, pat, n)) {
			return 1;
		}
	}
	return 0;
}

enum mtasts_tls
mtasts_tls_decide(const struct mtasts_policy *policy, const char *mx_host)
{
	if (policy == NULL)
		return MTASTS_TLS_CONFIGURED;
	switch (policy->mode) {
	case MTASTS_MODE_ENFORCE:
		return mtasts_mx_match(policy, mx_host) ? MTASTS_TLS_REQUIRED : MTASTS_TLS_SKIP_MX;
	case MTASTS_MODE_TESTING:
		return MTASTS_TLS_OPPORTUNISTIC_INSECURE;
	case MTASTS_MODE_NONE:
		break;
	}
	return MTASTS_TLS_CONFIGURED;
}

const char *
mtasts_tls_str(enum mtasts_tls decision)
{
	switch (decision) {
	case MTASTS_TLS_CONFIGURED:
		return "configured";
	case MTASTS_TLS_REQUIRED:
		return "Required";
	case MTASTS_TLS_SKIP_MX:
		return "skip-mx";
	case MTASTS_TLS_OPPORTUNISTIC_INSECURE:
		return "OpportunisticInsecure";
	}
	return "unknown";
}

/* ---- the HTTPS fetch (RFC 8461 3.3) ---- */

int
mtasts_global_init(void)
{
	return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : KUMO_EIO;
}

void
mtasts_global_cleanup(void)
{
	curl_global_cleanup();
}

struct fetch_ctx {
	struct buf body;
	int too_big;
};

/* libcurl write callback: append under the cap; returning short makes curl abort the transfer. */
static size_t
fetch_write(char *data, size_t size, size_t nmemb, void *arg)
{
	struct fetch_ctx *ctx = arg;
	size_t n = size * nmemb;

	if (buf_append(&ctx->body, data, n) < 0) {
		ctx->too_big = 1;
		return 0;
	}
	return n;
}

/* Is the Content-Type media type text/plain (case-insensitive, parameters ignored)? */
static int
content_type_ok(const char *ct)
{
	size_t n;

	if (ct == NULL)
		return 0;
	while (is_wsp((unsigned char)*ct))
		ct++;
	n = strlen("text/plain");
	if (!ascii_ncaseeq(ct, "text/plain", n) || strlen(ct) < n)
		return 0;
	ct += n;
	while (is_wsp((unsigned char)*ct))
		ct++;
	return *ct == '\0' || *ct == ';';
}

static int
curl_code_to_kumo(CURLcode cc, const struct fetch_ctx *ctx)
{
	switch (cc) {
	case CURLE_OK:
		return 0;
	case CURLE_OPERATION_TIMEDOUT:
		return KUMO_ETIMEDOUT;
	case CURLE_WRITE_ERROR:
	case CURLE_FILESIZE_EXCEEDED:
		return ctx->too_big || cc == CURLE_FILESIZE_EXCEEDED ? KUMO_ENOSPACE : KUMO_EIO;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_USE_SSL_FAILED:
		return KUMO_ETLS;
	case CURLE_TOO_MANY_REDIRECTS:
		return KUMO_EPROTO;
	default:
		return KUMO_EIO;
	}
}

int
mtasts_fetch(const char *domain, const struct mtasts_fetch_opts *opts, struct mtasts_policy *policy,
             char **body_r, char **err_r)
{
	char errbuf[CURL_ERROR_SIZE], q[QUOTE_BUF];
	struct fetch_ctx ctx;
	struct curl_slist *connect_to = NULL;
	CURL *h = NULL;
	CURLcode cc;
	char *url = NULL, *perr = NULL;
	const char *ct = NULL;
	long status = 0, timeout_ms;
	size_t dn;
	int rc;

	memset(policy, 0, sizeof(*policy));
	policy->mode = MTASTS_MODE_NONE;
	if (body_r != NULL)
		*body_r = NULL;
	buf_init(&ctx.body, MTASTS_MAX_BODY);
	ctx.too_big = 0;

	dn = domain ? strlen(domain) : 0;
	if (dn > 0 && domain[dn - 1] == '.')
		dn--;
	if (domain == NULL || !domain_valid(domain, dn)) {
		quote(q, sizeof(q), domain ? domain : "", domain ? strlen(domain) : 0);
		set_err(err_r, "\"%s\": not a domain name", q);
		rc = KUMO_EINVAL;
		goto out;
	}
	url = xasprintf("https://mta-sts.%.*s/.well-known/mta-sts.txt", (int)dn, domain);
	timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : MTASTS_FETCH_TIMEOUT_MS;

	h = curl_easy_init();
	if (h == NULL) {
		set_err(err_r, "%s: curl_easy_init failed", url);
		rc = KUMO_EIO;
		goto out;
	}
	errbuf[0] = '\0';
	if (opts && opts->connect_to) {
		connect_to = curl_slist_append(NULL, opts->connect_to);
		if (connect_to == NULL) {
			set_err(err_r, "%s: out of memory", url);
			rc = KUMO_EIO;
			goto out;
		}
	}
	/* Options whose failure would weaken the fetch are checked together below. */
	cc = curl_easy_setopt(h, CURLOPT_URL, url);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_NOSIGNAL,
		                      1L); /* worker threads must not get SIGALRM */
#if LIBCURL_VERSION_NUM >= 0x075500
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
#else
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)CURLPROTO_HTTPS);
#endif
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION,
		                      0L); /* RFC 8461 3.3: no redirects */
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_PROXY, ""); /* ignore https_proxy and friends */
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_ms);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MTASTS_MAX_BODY);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, fetch_write);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_WRITEDATA, &ctx);
	if (cc == CURLE_OK)
		cc = curl_easy_setopt(h, CURLOPT_USERAGENT, "kumo/" PACKAGE_VERSION " (MTA-STS)");
	if (cc == CURLE_OK && connect_to)
		cc = curl_easy_setopt(h, CURLOPT_CONNECT_TO, connect_to);
	if (cc == CURLE_OK && opts && opts->cafile)
		cc = curl_easy_setopt(h, CURLOPT_CAINFO, opts->cafile);
	if (cc != CURLE_OK) {
		set_err(err_r, "%s: libcurl option: %s", url, curl_easy_strerror(cc));
		rc = KUMO_EIO;
		goto out;
	}

	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		rc = curl_code_to_kumo(cc, &ctx);
		if (rc == KUMO_ENOSPACE)
			set_err(err_r, "%s: policy larger than %d bytes", url, MTASTS_MAX_BODY);
		else
			set_err(err_r, "%s: %s", url, errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto out;
	}
	(void)curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		set_err(err_r, "%s: HTTP status %ld%s", url, status,
		        status >= 300 && status < 400 ? " (redirects are not followed)"
		                                      : ", want 200");
		rc = KUMO_EPROTO;
		goto out;
	}
	(void)curl_easy_getinfo(h, CURLINFO_CONTENT_TYPE, &ct);
	if (!content_type_ok(ct)) {
		quote(q, sizeof(q), ct ? ct : "", ct ? strlen(ct) : 0);
		set_err(err_r, "%s: Content-Type \"%s\", want text/plain", url, q);
		rc = KUMO_EPROTO;
		goto out;
	}
	rc = mtasts_policy_parse(ctx.body.data, ctx.body.len, policy, &perr);
	if (rc < 0) {
		set_err(err_r, "%s: %s", url, perr ? perr : "bad policy");
		goto out;
	}
	if (body_r != NULL)
		*body_r = buf_steal(&ctx.body, NULL);
out:
	free(perr);
	free(url);
	if (h != NULL)
		curl_easy_cleanup(h);
	curl_slist_free_all(connect_to);
	buf_release(&ctx.body);
	return rc;
}

/* ---- the cache ---- */

struct cache_entry {
	struct cache_entry *next;
	char *domain;
	char id[MTASTS_ID_MAX + 1];
	time_t expires; /* valid while now < expires */
	struct mtasts_policy policy;
};

struct mtasts_cache {
	struct cache_entry **buckets;
	size_t nbuckets; /* a power of two */
	size_t count;
	size_t max;
};

/* FNV-1a over the lower-cased domain without a trailing dot; *len_r gets that length. */
static uint64_t
cache_hash(const char *domain, size_t *len_r)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	size_t n = strlen(domain);

	if (n > 0 && domain[n - 1] == '.')
		n--;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)to_lower((unsigned char)domain[i]);
		h *= 0x100000001b3ULL;
	}
	*len_r = n;
	return h;
}

struct mtasts_cache *
mtasts_cache_new(size_t max_entries)
{
	struct mtasts_cache *c = xcalloc(1, sizeof(*c));

	c->max = max_entries ? max_entries : CACHE_DEFAULT_MAX;
	c->nbuckets = CACHE_MIN_BUCKETS;
	c->buckets = xcalloc(c->nbuckets, sizeof(*c->buckets));
	return c;
}

static void
entry_free(struct cache_entry *e)
{
	mtasts_policy_clear(&e->policy);
	free(e->domain);
	free(e);
}

void
mtasts_cache_free(struct mtasts_cache **cachep)
{
	struct mtasts_cache *c;

	if (cachep == NULL || *cachep == NULL)
		return;
	c = *cachep;
	for (size_t i = 0; i < c->nbuckets; i++) {
		struct cache_entry *e = c->buckets[i], *next;
		for (; e != NULL; e = next) {
			next = e->next;
			entry_free(e);
		}
	}
	free(c->buckets);
	free(c);
	*cachep = NULL;
}

size_t
mtasts_cache_count(const struct mtasts_cache *cache)
{
	return cache->count;
}

/* The link pointing at domain's entry (*link is NULL when there is none). */
static struct cache_entry **
cache_find(struct mtasts_cache *c, const char *domain)
{
	size_t n;
	uint64_t h = cache_hash(domain, &n);
	struct cache_entry **link = &c->buckets[h & (c->nbuckets - 1)];

	for (; *link != NULL; link = &(*link)->next)
		if (strlen((*link)->domain) == n && ascii_ncaseeq((*link)->domain, domain, n))
			break;
	return link;
}

static void
cache_unlink(struct mtasts_cache *c, struct cache_entry **link)
{
	struct cache_entry *e = *link;

	*link = e->next;
	entry_free(e);
	c->count--;
}

/* Find domain's entry, dropping it if it has expired at now. */
static struct cache_entry *
cache_live(struct mtasts_cache *c, const char *domain, time_t now)
{
	struct cache_entry **link = cache_find(c, domain);

	if (*link != NULL && now >= (*link)->expires) {
		cache_unlink(c, link);
		return NULL;
	}
	return *link;
}

static void
cache_grow(struct mtasts_cache *c)
{
	size_t nb = c->nbuckets * 2;
	struct cache_entry **b = xcalloc(nb, sizeof(*b));

	for (size_t i = 0; i < c->nbuckets; i++) {
		struct cache_entry *e = c->buckets[i], *next;
		for (; e != NULL; e = next) {
			size_t n;
			uint64_t h = cache_hash(e->domain, &n);
			next = e->next;
			e->next = b[h & (nb - 1)];
			b[h & (nb - 1)] = e;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = nb;
}

/* Make room for one more entry: drop expired ones, then the one expiring first. */
static void
cache_make_room(struct mtasts_cache *c, time_t now)
{
	struct cache_entry **oldest = NULL;

	for (size_t i = 0; i < c->nbuckets; i++) {
		struct cache_entry **link = &c->buckets[i];
		while (*link != NULL) {
			if (now >= (*link)->expires) {
				cache_unlink(c, link);
				continue;
			}
			link = &(*link)->next;
		}
	}
	if (c->count < c->max)
		return;
	for (size_t i = 0; i < c->nbuckets; i++)
		for (struct cache_entry **link = &c->buckets[i]; *link != NULL;
		     link = &(*link)->next)
			if (oldest == NULL || (*link)->expires < (*oldest)->expires)
				oldest = link;
	if (oldest != NULL)
		cache_unlink(c, oldest);
}

const struct mtasts_policy *
mtasts_cache_get(struct mtasts_cache *cache, const char *domain, time_t now, const char **id_r)
{
	struct cache_entry *e = cache_live(cache, domain, now);

	if (id_r != NULL)
		*id_r = e ? e->id : NULL;
	return e ? &e->policy : NULL;
}

int
mtasts_cache_needs_fetch(struct mtasts_cache *cache, const char *domain, const char *txt_id,
                         time_t now)
{
	struct cache_entry *e = cache_live(cache, domain, now);

	if (txt_id == NULL)
		return 0; /* no live record: nothing to fetch, a cached policy still applies */
	return e == NULL || strcmp(e->id, txt_id) != 0;
}

/* Store (or replace) domain's entry and return it. */
static struct cache_entry *
cache_store(struct mtasts_cache *c, const char *domain, const char *id,
            struct mtasts_policy *policy, time_t now)
{
	struct cache_entry **link = cache_find(c, domain), *e = *link;
	size_t n;

	if (e == NULL) {
		if (c->count >= c->max) {
			cache_make_room(c, now);
			link = cache_find(c, domain);
		}
		if (c->count >= c->nbuckets) {
			cache_grow(c);
			link = cache_find(c, domain);
		}
		e = xcalloc(1, sizeof(*e));
		(void)cache_hash(domain, &n);
		e->domain = xstrndup(domain, n);
		for (size_t i = 0; i < n; i++)
			e->domain[i] = (char)to_lower((unsigned char)e->domain[i]);
		*link = e;
		c->count++;
	}
	mtasts_policy_move(&e->policy, policy);
	e->id[0] = '\0';
	if (id != NULL) {
		size_t idn = strlen(id);
		if (idn > MTASTS_ID_MAX)
			idn = MTASTS_ID_MAX;
		memcpy(e->id, id, idn);
		e->id[idn] = '\0';
	}
	e->expires = now + (time_t)e->policy.max_age;
	return e;
}

void
mtasts_cache_put(struct mtasts_cache *cache, const char *domain, const char *id,
                 struct mtasts_policy *policy, time_t now)
{
	(void)cache_store(cache, domain, id, policy, now);
}

const struct mtasts_policy *
mtasts_cache_update(struct mtasts_cache *cache, const char *domain, const char *id, int fetch_rc,
                    struct mtasts_policy *fetched, time_t now)
{
	if (fetch_rc == 0 && fetched != NULL)
		return &cache_store(cache, domain, id, fetched, now)
		            ->policy; /* applies now even with max_age 0 */
	return mtasts_cache_get(cache, domain, now, NULL);
}

int
mtasts_cache_remove(struct mtasts_cache *cache, const char *domain)
{
	struct cache_entry **link = cache_find(cache, domain);

	if (*link == NULL)
		return 0;
	cache_unlink(cache, link);
	return 1;
}
