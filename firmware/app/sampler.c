#include "sampler.h"

#include <string.h>

#include "port.h"

void sampler_init(sampler_t *s)
{
    memset(s->buf, 0, sizeof s->buf);
    s->start[0] = 0;
    s->start[1] = SAMPLER_BLOCK;
    s->time_us[0] = 0;
    s->time_us[1] = 0;
    s->ready = 0;
    s->active = 0;
    s->fill = 0;
    s->overruns = 0;
}

void sampler_half_done(sampler_t *s, uint8_t half, uint32_t now_us)
{
    half &= 1u;
    uint8_t next = (uint8_t)(half ^ 1u);
    s->time_us[half] = now_us;
    s->ready |= (uint8_t)(1u << half);
    if (s->ready & (1u << next)) {
        /* The application never took the other half, which is being overwritten now. */
        s->ready &= (uint8_t)~(1u << next);
        s->overruns++;
    }
    s->start[next] = s->start[half] + SAMPLER_BLOCK;
    s->active = next;
}

void sampler_push(sampler_t *s, uint16_t code, uint32_t now_us)
{
    uint8_t half = s->active;
    s->buf[half][s->fill] = code;
    s->fill++;
    if (s->fill == SAMPLER_BLOCK) {
        s->fill = 0;
        sampler_half_done(s, half, now_us);
    }
}

uint32_t sampler_index_at(const sampler_t *s, uint32_t written_in_active)
{
    return s->start[s->active] + written_in_active;
}

uint32_t sampler_active_start(const sampler_t *s) { return s->start[s->active]; }

bool sampler_take(sampler_t *s, sampler_block_t *out)
{
    uint32_t irq = port_irq_save();
    uint8_t ready = s->ready;
    if (ready == 0) {
        port_irq_restore(irq);
        return false;
    }
    /* At most one half is ready: sampler_half_done drops the one being overwritten. */
    uint8_t half = (uint8_t)(ready >> 1);
    memcpy(out->codes, s->buf[half], sizeof out->codes);
    out->start_index = s->start[half];
    out->time_us = s->time_us[half];
    s->ready = (uint8_t)(ready & ~(1u << half));
    port_irq_restore(irq);
    return true;
}

uint32_t sampler_overruns(const sampler_t *s) { return s->overruns; }
