#ifndef KUMO_throttle_H
#define KUMO_throttle_H
#endif
