/* Application: sampler -> framer -> transport, and the command loop. Target-independent. */
#ifndef APP_H
#define APP_H

#include <stdbool.h>
#include <stdint.h>

#include "sampler.h"

typedef struct {
    uint8_t link;              /* PROTO_LINK_UART or PROTO_LINK_BLE */
    uint8_t codec;             /* codec streamed from reset */
    uint8_t gain;              /* PGA gain at reset */
    uint32_t pace_bytes_per_s; /* 0: unpaced (wired UART); BLE: the radio budget */
} app_config_t;

typedef struct {
    uint32_t clip_count;
    uint32_t adc_overruns;
    uint32_t tx_drops;
    uint32_t rx_crc_errors;
    uint32_t rx_skipped_bytes;
} app_counters_t;

/* Resets all application state and queues DEVICE_INFO; the port starts sampling after. */
void app_init(const app_config_t *config);
/* One pass of the main loop; returns true while bytes wait for the UART (do not sleep). */
bool app_poll(void);
/* The sampler the port's sample interrupt or DMA feeds. */
sampler_t *app_sampler(void);
app_counters_t app_counters(void);

#endif
