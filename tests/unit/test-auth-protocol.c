/* test-auth-protocol.c — placeholder until the module's tests are written: fails on purpose. */
#include "tap.h"
int main(void) {
    ok(0, "tests for auth-protocol not written yet");
    return tap_done();
}
