/* Host unit-test runner: every suite, one summary line, non-zero exit on failure. */
#include <stdio.h>
#include <string.h>

#include "check.h"

int check_failures;
int check_count;

#define SUITES(X)                       \
    X(test_golden_crc)                  \
    X(test_golden_adpcm)                \
    X(test_golden_frames_decode)        \
    X(test_golden_frames_encode)        \
    X(test_golden_bit_flips_rejected)   \
    X(test_golden_rejects)              \
    X(test_parser_chunking_and_noise)   \
    X(test_parser_corrupt_length)       \
    X(test_adpcm_frame_independence)    \
    X(test_sampler_double_buffer)       \
    X(test_sampler_overrun)             \
    X(test_transport_whole_frames)      \
    X(test_transport_pacing)            \
    X(test_command_parser)              \
    X(test_app_boot_stream)             \
    X(test_app_commands)                \
    X(test_app_adpcm_stream)            \
    X(test_app_status_timing)           \
    X(test_stm32_clock)                 \
    X(test_stm32_clock_hse_timeout)     \
    X(test_stm32_sampling)              \
    X(test_stm32_usart_wired)           \
    X(test_stm32_usart_ble)             \
    X(test_stm32_pga)

#define DECLARE(name) void name(void);
SUITES(DECLARE)

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        test_fn fn;
    } suites[] = {
#define ENTRY(name) {#name, name},
        SUITES(ENTRY)
    };
    int ran = 0;
    for (size_t i = 0; i < sizeof suites / sizeof suites[0]; i++) {
        if (argc > 1 && strstr(suites[i].name, argv[1]) == NULL) {
            continue;
        }
        int before = check_failures;
        suites[i].fn();
        ran++;
        printf("%-36s %s\n", suites[i].name, check_failures == before ? "ok" : "FAILED");
    }
    printf("%d suites, %d checks, %d failures\n", ran, check_count, check_failures);
    return check_failures == 0 && ran > 0 ? 0 : 1;
}
