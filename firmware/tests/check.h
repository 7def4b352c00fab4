/* Minimal test harness: CHECK macros count failures; run_tests.c lists the suites. */
#ifndef CHECK_H
#define CHECK_H

#include <stdio.h>

extern int check_failures;
extern int check_count;

#define CHECK(cond)                                                                     \
    do {                                                                                \
        check_count++;                                                                  \
        if (!(cond)) {                                                                  \
            check_failures++;                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);  \
        }                                                                               \
    } while (0)

#define CHECK_EQ(a, b)                                                                  \
    do {                                                                                \
        long long check_a_ = (long long)(a), check_b_ = (long long)(b);                 \
        check_count++;                                                                  \
        if (check_a_ != check_b_) {                                                     \
            check_failures++;                                                           \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld != %lld)\n",      \
                    __FILE__, __LINE__, #a, #b, check_a_, check_b_);                    \
        }                                                                               \
    } while (0)

typedef void (*test_fn)(void);

#endif
