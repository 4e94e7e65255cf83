/* maildir.c — not yet written (placeholder so the tree builds). */
#include "maildir.h"
