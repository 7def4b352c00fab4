/* Fake STM32F405 register map for host tests of the register-level drivers. */
#ifndef FAKE_REGS_H
#define FAKE_REGS_H

#include <stdint.h>

void fake_regs_reset(void);
/* Pointer to the fake word at a hardware address (to preset or inspect it). */
volatile uint32_t *fake_reg(uintptr_t hw_address);

#endif
