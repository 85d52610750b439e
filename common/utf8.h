/*
 * utf8.h: incremental UTF-8 validation (RFC 3629; no surrogates, no
 * overlongs, nothing above U+10FFFF). The state carries across calls so a
 * text message split over fragments and reads is checked as it arrives and
 * fails at the first bad byte (RFC 6455 §8.1, fail fast).
 */
#ifndef SOCK_UTF8_H
#define SOCK_UTF8_H

#include <stddef.h>
#include <stdint.h>

#define UTF8_ACCEPT 0u /* at a character boundary: a complete text is valid */
#define UTF8_REJECT 1u /* invalid; sticky */

/*
 * Feeds len bytes to the validator in state and returns the new state:
 * UTF8_ACCEPT, UTF8_REJECT, or another value meaning "inside a sequence,
 * valid so far". Once UTF8_REJECT is returned, later calls return it too.
 * Runs an 8-bytes-at-a-time ASCII fast path.
 */
uint32_t utf8_validate(uint32_t state, const uint8_t *p, size_t len);

#endif
