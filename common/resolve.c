/* resolve.c — not yet written (placeholder so the tree builds). */
#include "resolve.h"
