#ifndef KUMO_cidr_H
#define KUMO_cidr_H
#endif
