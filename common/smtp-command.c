/* smtp-command.c — not yet written (placeholder so the tree builds). */
#include "smtp-command.h"
