/*
 * leakcheck.h: LeakSanitizer for processes that leave with _exit (the
 * master's workers), which skips the check LSan runs at exit().
 */
#ifndef SOCK_LEAKCHECK_H
#define SOCK_LEAKCHECK_H

#include <stdbool.h>

/* Exit status of a process whose leak check found leaks (LSan's own). */
#define LEAKCHECK_EXIT_STATUS 23

/*
 * In a sanitizer build (SOCK_SANITIZE), runs LeakSanitizer now: leaks go
 * to stderr, and the result is true if it found any. Otherwise does
 * nothing and returns false. Call right before _exit, after freeing what
 * the process owns.
 */
bool leakcheck_found_leaks(void);

#endif
