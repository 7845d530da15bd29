/* config.c: written by the foundation issue. */
#include "kumo.h"
