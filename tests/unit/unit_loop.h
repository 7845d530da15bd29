/*
 * unit_loop.h: the guarded libuv loop shared by the suites that run real
 * sockets (conn, tls, smtp_client). Kept apart from unit.h so the other
 * suites do not pull in uv.h and its macros.
 */
#ifndef KUMO_UNIT_LOOP_H
#define KUMO_UNIT_LOOP_H

#include <netinet/in.h>

#include <uv.h>

/*
 * A libuv loop for tests that run real sockets, bounded by a guard timer:
 * unit_loop_begin() starts it with a guard of UNIT_GUARD_MS, unit_run_until()
 * turns it until *flag is set or the guard fires (1 if the flag was set),
 * unit_loop_end() lets closes finish, fails the test if handles were left
 * open, and closes the loop.
 */
#define UNIT_GUARD_MS 5000
extern uv_loop_t unit_loop;
extern int unit_guard_fired;
void unit_loop_begin(void);
int unit_run_until(const int *flag);
void unit_loop_end(void);
/* An IPv4 socket address for ip:port. */
struct sockaddr_in unit_addr4(const char *ip, int port);


#endif
