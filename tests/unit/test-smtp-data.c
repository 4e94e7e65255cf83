/* test-smtp-data.c — placeholder until the module's tests are written: fails on purpose. */
#include "tap.h"
int main(void) {
    ok(0, "tests for smtp-data not written yet");
    return tap_done();
}
