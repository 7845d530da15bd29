/*
 * cidr.h: lists of IPv4 and IPv6 hosts and prefixes ("127.0.0.1",
 * "10.0.0.0/8", "::1", "2001:db8::/32") for prohibited_hosts, skip_hosts
 * and relay_hosts.
 *
 * Decisions worth knowing:
 * - Host bits set below the prefix ("10.1.2.3/8") are masked off without
 *   an error: the entry means 10.0.0.0/8. Operators copy addresses with
 *   their prefix from interface listings; refusing them helps nobody.
 * - IPv4 and IPv6 are kept apart, except that IPv4-mapped IPv6
 *   (::ffff:a.b.c.d) is IPv4: an address ::ffff:127.0.0.1 matches the entry
 *   127.0.0.0/8, and an entry ::ffff:10.0.0.0/104 is stored as 10.0.0.0/8.
 *   So "0.0.0.0/0" matches every IPv4 address and "::/0" every IPv6 one.
 * - Duplicate entries are stored once.
 * - Zone ids ("fe80::1%eth0"), brackets and hostnames are refused.
 */
#ifndef KUMO_CIDR_H
#define KUMO_CIDR_H

#include <stddef.h>
#include <sys/socket.h>

struct cidr_list;

/* Enough room for one entry's text ("ffff:...:ffff/128"), terminator included. */
#define CIDR_FORMAT_MAX 64

/* A new empty list; free it with cidr_list_free(). */
struct cidr_list *cidr_list_new(void);
/* Free a list and clear the caller's pointer; NULL is fine. */
void cidr_list_free(struct cidr_list **lp);

/*
 * Add one entry: an address or address/prefix, surrounding spaces ignored.
 * 0 on success; KUMO_EPARSE (bad address or prefix) or KUMO_ERANGE (prefix
 * above 32 or 128) with *err_r set to an allocated message naming the
 * entry, e.g. "10.0.0.0/33": prefix length 33 is above 32. The caller
 * frees *err_r; err_r may be NULL. The list is unchanged on error.
 */
int cidr_list_add(struct cidr_list *l, const char *spec, char **err_r);

/* 1 if the address (AF_INET or AF_INET6) is in the list, 0 if not (or another family). */
int cidr_list_match(const struct cidr_list *l, const struct sockaddr *sa);
/* The same for an address in text form: 1, 0, or KUMO_EPARSE if addr is not an address. */
int cidr_list_match_str(const struct cidr_list *l, const char *addr);

/* The number of entries. */
size_t cidr_list_count(const struct cidr_list *l);

/*
 * Write entry i (in the order added) in canonical form: hosts without a
 * prefix ("127.0.0.1", "::1"), networks with one ("10.0.0.0/8",
 * "2001:db8::/32"). 0, or KUMO_ENOTFOUND if i is past the end.
 */
int cidr_list_entry_format(const struct cidr_list *l, size_t i, char *out, size_t outlen);

/* All entries joined by ", " ("" for an empty list), allocated; the caller frees. */
char *cidr_list_format(const struct cidr_list *l);

#endif
