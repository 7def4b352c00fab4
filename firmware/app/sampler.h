/* Sampler: double buffer of ADC codes between the sample interrupt (or DMA) and the
 * application. Per-sample ports call sampler_push from their timer interrupt; DMA ports
 * point the DMA at sampler->buf and call sampler_half_done from the half/full interrupts. */
#ifndef SAMPLER_H
#define SAMPLER_H

#include <stdbool.h>
#include <stdint.h>

#define SAMPLER_BLOCK 160u /* samples per half buffer: 20 ms at 8 kHz */
#define SAMPLE_RATE_HZ 8000u

typedef struct {
    uint16_t codes[SAMPLER_BLOCK];
    uint32_t start_index; /* running index of codes[0] (wraps modulo 2^32) */
    uint32_t time_us;     /* port_time_us() when the block completed */
} sampler_block_t;

typedef struct {
    uint16_t buf[2][SAMPLER_BLOCK];
    volatile uint32_t start[2];
    volatile uint32_t time_us[2];
    volatile uint8_t ready; /* bit h: half h completed and not yet taken */
    volatile uint8_t active;
    volatile uint16_t fill;
    volatile uint32_t overruns;
} sampler_t;

void sampler_init(sampler_t *s);
/* Interrupt context, per-sample ports. */
void sampler_push(sampler_t *s, uint16_t code, uint32_t now_us);
/* Interrupt context, DMA ports: half 0 (half-transfer) or 1 (transfer-complete). */
void sampler_half_done(sampler_t *s, uint8_t half, uint32_t now_us);
/* Index of the next sample; DMA ports pass the samples already written into the active
 * half, per-sample ports pass s->fill. Call with interrupts masked. */
uint32_t sampler_index_at(const sampler_t *s, uint32_t written_in_active);
/* Start index of the block being acquired now. */
uint32_t sampler_active_start(const sampler_t *s);
/* Copies the oldest completed block out (with interrupts masked); false if none. */
bool sampler_take(sampler_t *s, sampler_block_t *out);
uint32_t sampler_overruns(const sampler_t *s);

#endif
