/* Transport: transmit queue that takes whole frames or nothing, drained into the UART with
 * optional token-bucket pacing (the BLE module's radio budget, docs/protocol.md section 6). */
#ifndef TRANSPORT_H
#define TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TXQ_CAPACITY 4096u

typedef bool (*transport_write_fn)(uint8_t byte);

typedef struct {
    uint8_t buf[TXQ_CAPACITY];
    size_t head, count;
    uint32_t drops;
    uint32_t rate_bytes_per_s; /* 0: unpaced, the UART's own speed is the limit */
    uint32_t burst_bytes;
    uint64_t credit; /* in byte-microseconds-per-second units: 1 byte = 1e6 */
    uint32_t last_us;
} transport_t;

void transport_init(transport_t *t, uint32_t rate_bytes_per_s, uint32_t burst_bytes,
                    uint32_t now_us);
/* Queues a whole frame; when it does not fit, drops it, counts it and returns false. */
bool transport_send(transport_t *t, const uint8_t *frame, size_t len);
/* Writes queued bytes while the UART accepts them and the pacing credit allows; returns the
 * number of bytes written. */
size_t transport_pump(transport_t *t, uint32_t now_us, transport_write_fn write);
size_t transport_queued(const transport_t *t);
uint32_t transport_drops(const transport_t *t);

#endif
