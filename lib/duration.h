#ifndef KUMO_duration_H
#define KUMO_duration_H
#endif
