/* address.c — not yet written (placeholder so the tree builds). */
#include "address.h"
