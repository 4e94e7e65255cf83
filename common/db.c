/* db.c — not yet written (placeholder so the tree builds). */
#include "db.h"
