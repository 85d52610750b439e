/*
 * test_idmap.c: unit tests for worker/idmap.c: empty maps, key 0 and keys
 * never inserted, growth (at most half full, every member kept), deleting
 * absent keys, consecutive serials, keys that share one home slot (one
 * long run, also wrapping past the table's end) and 100k random
 * put/get/del operations checked against a plain reference array.
 */
#include "idmap.h"

#include <check.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* A distinct non-NULL value per (key, generation). */
static void *
val_of(uint32_t key, uint32_t gen)
{
    return (void *)(uintptr_t)(((uint64_t)gen << 32 | key) * 8 + 8);
}

/*
 * The home slot, mirroring idmap.c. Used only to pick colliding keys; the
 * tests below also check from the table itself that the keys did collide,
 * so a changed hash fails loudly rather than making them vacuous.
 */
static size_t
home_of(uint32_t key, size_t cap)
{
    uint64_t h = (uint64_t)key * 11400714819323198485ULL;

    return (size_t)(h >> (64 - __builtin_ctzll(cap)));
}

/*
 * idmap_get(m, key) == want. A plain test, not ck_assert: in fork mode
 * every passing ck_assert is a message to the parent, too slow for loops
 * of 100k lookups.
 */
static void
expect_get(const struct idmap *m, uint32_t key, const void *want)
{
    const void *got = idmap_get(m, key);

    if (got != want)
        ck_abort_msg("get(%" PRIu32 ") = %p, want %p", key, got, want);
}

/* murmur3's finaliser: a bijection, so distinct non-zero in, distinct out. */
static uint32_t
mix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    h *= 0xc2b2ae35u;
    h ^= h >> 16;
    return h;
}

/* Occupied slots, checked against n. */
static size_t
count_used(const struct idmap *m)
{
    size_t used = 0;

    for (size_t i = 0; i < m->cap; i++)
        used += m->keys[i] != 0;
    ck_assert_uint_eq(used, m->n);
    return used;
}

/* Longest cyclic run of occupied slots. */
static size_t
longest_run(const struct idmap *m)
{
    size_t best = 0, run = 0;

    for (size_t k = 0; k < 2 * m->cap; k++) {
        run = m->keys[k & (m->cap - 1)] != 0 ? run + 1 : 0;
        if (run > best)
            best = run;
    }
    return best < m->cap ? best : m->cap;
}

/* Capacity the "at most half full" rule gives after n puts (min 64). */
static size_t
cap_for(size_t n)
{
    size_t cap = 64;

    while (n * 2 > cap)
        cap *= 2;
    return cap;
}

START_TEST(test_empty)
{
    struct idmap m;

    idmap_init(&m);
    expect_get(&m, 0, NULL);
    expect_get(&m, 1, NULL);
    expect_get(&m, UINT32_MAX, NULL);
    idmap_del(&m, 0);
    idmap_del(&m, 1);
    ck_assert_uint_eq(m.n, 0);
    ck_assert_uint_eq(m.cap, 0);
    idmap_destroy(&m);
    /* destroy leaves an empty map that can be used again */
    ck_assert_ptr_null(m.keys);
    expect_get(&m, 1, NULL);
    ck_assert_int_eq(idmap_put(&m, 1, val_of(1, 0)), 0);
    expect_get(&m, 1, val_of(1, 0));
    idmap_destroy(&m);
    idmap_destroy(&m);
}
END_TEST

START_TEST(test_basic)
{
    struct idmap m;

    idmap_init(&m);
    ck_assert_int_eq(idmap_put(&m, 1, val_of(1, 0)), 0);
    ck_assert_int_eq(idmap_put(&m, 2, val_of(2, 0)), 0);
    ck_assert_int_eq(idmap_put(&m, UINT32_MAX, val_of(UINT32_MAX, 0)), 0);
    ck_assert_uint_eq(m.n, 3);
    ck_assert_uint_eq(m.cap, 64);
    expect_get(&m, 1, val_of(1, 0));
    expect_get(&m, 2, val_of(2, 0));
    expect_get(&m, UINT32_MAX, val_of(UINT32_MAX, 0));
    /* 0 is never a key, whatever the table holds. */
    expect_get(&m, 0, NULL);
    for (uint32_t k = 3; k < 10000; k++)
        expect_get(&m, k, NULL);
    idmap_del(&m, 2);
    ck_assert_uint_eq(m.n, 2);
    expect_get(&m, 2, NULL);
    expect_get(&m, 1, val_of(1, 0));
    expect_get(&m, UINT32_MAX, val_of(UINT32_MAX, 0));
    /* A deleted key may come back with another value. */
    ck_assert_int_eq(idmap_put(&m, 2, val_of(2, 1)), 0);
    expect_get(&m, 2, val_of(2, 1));
    ck_assert_uint_eq(m.n, 3);
    idmap_destroy(&m);
    ck_assert_uint_eq(m.n, 0);
}
END_TEST

START_TEST(test_growth)
{
    struct idmap m;
    static uint32_t keys[20000];

    /* Scattered distinct keys, so growth rehashes many small runs. */
    for (size_t i = 0; i < 20000; i++)
        keys[i] = mix32((uint32_t)i + 1);
    idmap_init(&m);
    for (size_t i = 0; i < 20000; i++) {
        ck_assert_int_eq(idmap_put(&m, keys[i], val_of(keys[i], 0)), 0);
        ck_assert_uint_eq(m.cap, cap_for(m.n));
        /* Right after each growth, every member is still found. */
        if (m.n == m.cap / 4 + 1)
            for (size_t j = 0; j <= i; j++)
                expect_get(&m, keys[j], val_of(keys[j], 0));
    }
    ck_assert_uint_eq(m.n, 20000);
    ck_assert_uint_eq(m.cap, 65536);
    count_used(&m);
    for (size_t i = 0; i < 20000; i++)
        expect_get(&m, keys[i], val_of(keys[i], 0));
    idmap_destroy(&m);
}
END_TEST

START_TEST(test_exact_capacity_steps)
{
    struct idmap m;

    idmap_init(&m);
    for (uint32_t k = 1; k <= 32; k++)
        ck_assert_int_eq(idmap_put(&m, k, val_of(k, 0)), 0);
    ck_assert_uint_eq(m.cap, 64); /* exactly half full */
    ck_assert_int_eq(idmap_put(&m, 33, val_of(33, 0)), 0);
    ck_assert_uint_eq(m.cap, 128);
    for (uint32_t k = 34; k <= 64; k++)
        ck_assert_int_eq(idmap_put(&m, k, val_of(k, 0)), 0);
    ck_assert_uint_eq(m.cap, 128);
    ck_assert_int_eq(idmap_put(&m, 65, val_of(65, 0)), 0);
    ck_assert_uint_eq(m.cap, 256);
    for (uint32_t k = 1; k <= 65; k++)
        expect_get(&m, k, val_of(k, 0));
    expect_get(&m, 66, NULL);
    idmap_destroy(&m);
}
END_TEST

START_TEST(test_del_absent)
{
    struct idmap m;

    idmap_init(&m);
    for (uint32_t k = 1; k <= 1000; k++)
        ck_assert_int_eq(idmap_put(&m, k, val_of(k, 0)), 0);
    idmap_del(&m, 0);
    idmap_del(&m, 1001);
    idmap_del(&m, UINT32_MAX);
    for (uint32_t k = 1; k <= 1000; k++)
        idmap_del(&m, k + 4096); /* absent keys near present ones */
    ck_assert_uint_eq(m.n, 1000);
    idmap_del(&m, 500);
    idmap_del(&m, 500); /* twice */
    ck_assert_uint_eq(m.n, 999);
    expect_get(&m, 500, NULL);
    for (uint32_t k = 1; k <= 1000; k++)
        if (k != 500)
            expect_get(&m, k, val_of(k, 0));
    count_used(&m);
    idmap_destroy(&m);
}
END_TEST

/* Serials as conn_upgrade.c hands them out: consecutive, retired out of
   order. */
START_TEST(test_consecutive_serials)
{
    struct idmap m;
    const uint32_t n = 50000;

    idmap_init(&m);
    for (uint32_t k = 1; k <= n; k++)
        ck_assert_int_eq(idmap_put(&m, k, val_of(k, 0)), 0);
    for (uint32_t k = 1; k <= n; k += 2)
        idmap_del(&m, k);
    ck_assert_uint_eq(m.n, n / 2);
    for (uint32_t k = 1; k <= n; k++)
        expect_get(&m, k, k % 2 ? NULL : val_of(k, 0));
    for (uint32_t k = n + 1; k <= n + 1000; k++)
        expect_get(&m, k, NULL);
    for (uint32_t k = 2; k <= n; k += 2)
        idmap_del(&m, k);
    ck_assert_uint_eq(m.n, 0);
    /* No tombstones: an emptied table is all empty slots. */
    ck_assert_uint_eq(count_used(&m), 0);
    for (size_t i = 0; i < m.cap; i++)
        ck_assert_ptr_null(m.vals[i]);
    idmap_destroy(&m);
}
END_TEST

/*
 * Keys that all share one home slot form one run; deleting from its front,
 * middle and back must keep the rest reachable.
 */
START_TEST(test_colliding_keys)
{
    struct idmap m;
    uint32_t keys[30];
    size_t nk = 0;
    uint64_t rs = 33;

    /* Same home at cap 64 (the table stays there: n <= 32). */
    for (uint32_t k = 1; nk < 30; k++)
        if (home_of(k, 64) == home_of(1, 64))
            keys[nk++] = k;
    idmap_init(&m);
    for (size_t i = 0; i < nk; i++)
        ck_assert_int_eq(idmap_put(&m, keys[i], val_of(keys[i], 0)), 0);
    ck_assert_uint_eq(m.cap, 64);
    ck_assert_uint_eq(longest_run(&m), 30); /* they did collide */
    /* Delete the front, the back, then a middle one. */
    idmap_del(&m, keys[0]);
    idmap_del(&m, keys[29]);
    idmap_del(&m, keys[14]);
    ck_assert_uint_eq(m.n, 27);
    ck_assert_uint_eq(longest_run(&m), 27); /* the hole was closed */
    for (size_t i = 0; i < nk; i++)
        expect_get(&m, keys[i],
                         i == 0 || i == 29 || i == 14 ? NULL
                                                      : val_of(keys[i], 0));
    /* Back in, at the run's end now. */
    ck_assert_int_eq(idmap_put(&m, keys[0], val_of(keys[0], 1)), 0);
    ck_assert_int_eq(idmap_put(&m, keys[14], val_of(keys[14], 1)), 0);
    ck_assert_int_eq(idmap_put(&m, keys[29], val_of(keys[29], 1)), 0);
    ck_assert_uint_eq(longest_run(&m), 30);
    /* Then all of them in random order, checking the rest each time. */
    for (size_t left = nk; left > 0; left--) {
        size_t pick = test_rand(&rs) % left;
        uint32_t k = keys[pick];

        keys[pick] = keys[left - 1];
        keys[left - 1] = k;
        idmap_del(&m, k);
        expect_get(&m, k, NULL);
        ck_assert_uint_eq(m.n, left - 1);
        ck_assert_uint_eq(longest_run(&m), left - 1);
        for (size_t i = 0; i + 1 < left; i++)
            ck_assert_ptr_nonnull(idmap_get(&m, keys[i]));
    }
    ck_assert_uint_eq(count_used(&m), 0);
    idmap_destroy(&m);
}
END_TEST

/*
 * Runs from several homes near the end of the table that wrap to its start
 * and interleave, under random put/del: the backward shift must move a
 * member only toward (never past) its home, across the wrap.
 */
START_TEST(test_wrapping_clusters)
{
    struct idmap m;
    uint32_t keys[28];
    void *ref[28];
    size_t nk = 0;
    uint64_t rs = 44;
    const size_t homes[4] = { 61, 62, 63, 0 };
    bool wrapped = false;

    for (uint32_t k = 1; nk < 28; k++)
        if (home_of(k, 64) == homes[nk % 4])
            keys[nk++] = k;
    memset(ref, 0, sizeof(ref));
    idmap_init(&m);
    for (size_t i = 0; i < nk; i += 2) {
        ref[i] = val_of(keys[i], 0);
        ck_assert_int_eq(idmap_put(&m, keys[i], ref[i]), 0);
    }
    for (int op = 1; op <= 20000; op++) {
        size_t i = test_rand(&rs) % nk;
        unsigned r = (unsigned)(test_rand(&rs) % 3);

        if (r == 0 && ref[i] == NULL) {
            ref[i] = val_of(keys[i], (uint32_t)op);
            ck_assert_int_eq(idmap_put(&m, keys[i], ref[i]), 0);
        } else if (r == 1) {
            idmap_del(&m, keys[i]);
            ref[i] = NULL;
        }
        for (size_t j = 0; j < nk; j++)
            expect_get(&m, keys[j], ref[j]);
        ck_assert_uint_eq(m.cap, 64);
        count_used(&m);
        wrapped |= m.keys[63] != 0 && m.keys[0] != 0 && m.keys[1] != 0;
    }
    ck_assert(wrapped);
    idmap_destroy(&m);
}
END_TEST

#define NKEYS 3000

START_TEST(test_random_ops)
{
    struct idmap m;
    static uint32_t keys[NKEYS];
    static void *ref[NKEYS];
    uint64_t rs = 0x5eedULL + (uint64_t)_i;
    size_t present = 0, puts = 0, dels = 0, misses = 0;

    /* A third consecutive serials, a third sharing low bits, a third wild. */
    for (size_t i = 0; i < NKEYS; i++) {
        if (i < NKEYS / 3)
            keys[i] = (uint32_t)i + 1;
        else if (i < 2 * NKEYS / 3)
            keys[i] = (uint32_t)(i - NKEYS / 3) << 16 | 0x1234;
        else
            keys[i] = (uint32_t)(test_rand(&rs) >> 40) << 8 | 0x80000000u;
    }
    /* Wild draws could repeat: make keys unique (rarely needed). */
    for (size_t i = 2 * NKEYS / 3; i < NKEYS; i++)
        for (size_t j = 0; j < i; j++)
            if (keys[j] == keys[i]) {
                keys[i] += 1;
                j = (size_t)-1;
            }
    memset(ref, 0, sizeof(ref));
    idmap_init(&m);
    for (uint32_t op = 1; op <= 100000; op++) {
        size_t i = test_rand(&rs) % NKEYS;
        unsigned r = (unsigned)(test_rand(&rs) % 10);

        if (r < 4) {
            if (ref[i] == NULL) {
                ref[i] = val_of(keys[i], op);
                ck_assert_int_eq(idmap_put(&m, keys[i], ref[i]), 0);
                present++;
                puts++;
            }
        } else if (r < 7) {
            misses += ref[i] == NULL;
            if (ref[i] != NULL)
                present--;
            idmap_del(&m, keys[i]);
            ref[i] = NULL;
            dels++;
        } else {
            expect_get(&m, keys[i], ref[i]);
        }
        if (m.n != present)
            ck_abort_msg("op %" PRIu32 ": n %zu, want %zu", op, m.n, present);
        if (op % 5000 == 0) {
            for (size_t j = 0; j < NKEYS; j++)
                expect_get(&m, keys[j], ref[j]);
            expect_get(&m, 0, NULL);
            count_used(&m);
            ck_assert_uint_le(m.n * 2, m.cap);
        }
    }
    ck_assert_uint_gt(puts, 10000);
    ck_assert_uint_gt(dels, 10000);
    ck_assert_uint_gt(misses, 1000);
    for (size_t j = 0; j < NKEYS; j++)
        expect_get(&m, keys[j], ref[j]);
    idmap_destroy(&m);
}
END_TEST

static Suite *
idmap_suite(void)
{
    Suite *s = suite_create("idmap");
    TCase *basic = tcase_create("basic");
    TCase *cluster = tcase_create("cluster");
    TCase *rnd = tcase_create("random");

    tcase_add_test(basic, test_empty);
    tcase_add_test(basic, test_basic);
    tcase_add_test(basic, test_growth);
    tcase_add_test(basic, test_exact_capacity_steps);
    tcase_add_test(basic, test_del_absent);
    tcase_add_test(basic, test_consecutive_serials);
    suite_add_tcase(s, basic);

    tcase_add_test(cluster, test_colliding_keys);
    tcase_add_test(cluster, test_wrapping_clusters);
    suite_add_tcase(s, cluster);

    tcase_add_loop_test(rnd, test_random_ops, 0, 3);
    suite_add_tcase(s, rnd);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(idmap_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
