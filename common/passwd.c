/* passwd.c — not yet written (placeholder so the tree builds). */
#include "passwd.h"
