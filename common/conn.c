/* conn.c — not yet written (placeholder so the tree builds). */
#include "conn.h"
