#include "transport.h"

#define CREDIT_PER_BYTE 1000000u

void transport_init(transport_t *t, uint32_t rate_bytes_per_s, uint32_t burst_bytes,
                    uint32_t now_us)
{
    t->head = 0;
    t->count = 0;
    t->drops = 0;
    t->rate_bytes_per_s = rate_bytes_per_s;
    t->burst_bytes = burst_bytes;
    t->credit = (uint64_t)burst_bytes * CREDIT_PER_BYTE;
    t->last_us = now_us;
}

bool transport_send(transport_t *t, const uint8_t *frame, size_t len)
{
    if (len > TXQ_CAPACITY - t->count) {
        t->drops++;
        return false;
    }
    size_t tail = (t->head + t->count) % TXQ_CAPACITY;
    for (size_t i = 0; i < len; i++) {
        t->buf[(tail + i) % TXQ_CAPACITY] = frame[i];
    }
    t->count += len;
    return true;
}

static void refill(transport_t *t, uint32_t now_us)
{
    uint32_t elapsed = now_us - t->last_us; /* modulo 2^32: wrap-safe */
    t->last_us = now_us;
    uint64_t cap = (uint64_t)t->burst_bytes * CREDIT_PER_BYTE;
    t->credit += (uint64_t)elapsed * t->rate_bytes_per_s;
    if (t->credit > cap) {
        t->credit = cap;
    }
}

size_t transport_pump(transport_t *t, uint32_t now_us, transport_write_fn write)
{
    bool paced = t->rate_bytes_per_s != 0;
    if (paced) {
        refill(t, now_us);
    }
    size_t sent = 0;
    while (t->count > 0) {
        if (paced && t->credit < CREDIT_PER_BYTE) {
            break;
        }
        if (!write(t->buf[t->head])) {
            break;
        }
        t->head = (t->head + 1) % TXQ_CAPACITY;
        t->count--;
        sent++;
        if (paced) {
            t->credit -= CREDIT_PER_BYTE;
        }
    }
    return sent;
}

size_t transport_queued(const transport_t *t) { return t->count; }

uint32_t transport_drops(const transport_t *t) { return t->drops; }
