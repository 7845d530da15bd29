#ifndef KUMO_config_H
#define KUMO_config_H
#endif
