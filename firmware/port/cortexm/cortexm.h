/* Cortex-M core helpers shared by the board and QEMU ports. */
#ifndef CORTEXM_H
#define CORTEXM_H

#include <stdint.h>

static inline uint32_t cortexm_irq_save(void)
{
    uint32_t primask;
    __asm volatile("mrs %0, primask\n\tcpsid i" : "=r"(primask)::"memory");
    return primask;
}

static inline void cortexm_irq_restore(uint32_t primask)
{
    __asm volatile("msr primask, %0" ::"r"(primask) : "memory");
}

static inline void cortexm_wait_for_interrupt(void) { __asm volatile("wfi" ::: "memory"); }

#endif
