/* io.c — not yet written (placeholder so the tree builds). */
#include "io.h"
