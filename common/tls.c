/* tls.c — not yet written (placeholder so the tree builds). */
#include "tls.h"
