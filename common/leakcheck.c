/*
 * leakcheck.c: see leakcheck.h. The one place that knows whether the
 * build has LeakSanitizer: SOCK_SANITIZE (set by CMake's SOCK_SANITIZE
 * option) picks the definition, so no caller needs an #if.
 */
#include "leakcheck.h"

#if defined(SOCK_SANITIZE) && SOCK_SANITIZE
#include <sanitizer/lsan_interface.h>

bool
leakcheck_found_leaks(void)
{
    /* The "recoverable" check reports and returns, whatever ASAN_OPTIONS
       says about aborting, so the caller picks the exit status; with
       detect_leaks=0 it checks nothing. */
    return __lsan_do_recoverable_leak_check() != 0;
}
#else
bool
leakcheck_found_leaks(void)
{
    return false;
}
#endif
