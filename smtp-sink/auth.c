/*
 * auth.c: smtp-sink's AUTH users (--auth-users FILE of user:password lines,
 * '#' comments and blank lines allowed) and the base64 decoder that AUTH
 * PLAIN and LOGIN need. The decoder is fed peer bytes, so it is total.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kumo.h"
#include "log.h"
#include "sink.h"

struct user {
	char *name;
	char *pass;
};

static struct user *users;
static size_t nusers;

void
sink_auth_load(const char *path)
{
	FILE *fp = fopen(path, "r");
	char line[1024];
	int lineno = 0;

	if (fp == NULL)
		log_fatal("--auth-users: %s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), fp) != NULL) {
		size_t len = strcspn(line, "\r\n");
		char *colon;

		lineno++;
		line[len] = '\0';
		if (len == 0 || line[0] == '#')
			continue;
		colon = strchr(line, ':');
		if (colon == NULL || colon == line)
			log_fatal("--auth-users: %s:%d: expected user:password", path, lineno);
		*colon = '\0';
		users = xreallocarray(users, nusers + 1, sizeof(*users));
		users[nusers].name = xstrdup(line);
		users[nusers].pass = xstrdup(colon + 1);
		nusers++;
	}
	fclose(fp);
	if (nusers == 0)
		log_fatal("--auth-users: %s: no users", path);
}

int
sink_auth_check(const char *user, const char *pass)
{
	for (size_t i = 0; i < nusers; i++)
		if (strcmp(users[i].name, user) == 0 && strcmp(users[i].pass, pass) == 0)
			return 1;
	return 0;
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
sink_b64_decode(char *s, size_t len)
{
	unsigned acc = 0;
	int bits = 0;
	size_t out = 0, i, pad = 0;

	if (len % 4 != 0)
		return -1;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		int v;

		if (c == '=') {
			pad++;
			if (pad > 2 || i < len - 2)
				return -1;
			continue;
		}
		if (pad > 0)
			return -1;
		v = b64_value(c);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			s[out++] = (char)((acc >> bits) & 0xff);
		}
	}
	s[out] = '\0';
	return (int)out;
}
