#include "fake_regs.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Windows of the address space the drivers use: peripherals, core, unique ID. */
static uint32_t periph[0x28000u / 4u];  /* 0x40000000 .. 0x40027FFF */
static uint32_t core[0x1000u / 4u];     /* 0xE000E000 .. 0xE000EFFF */
static uint32_t uid[4];                 /* 0x1FFF7A10 .. */

uintptr_t stm32_fake_address(uintptr_t a);

uintptr_t stm32_fake_address(uintptr_t a)
{
    if (a >= 0x40000000u && a < 0x40028000u) {
        return (uintptr_t)&periph[(a - 0x40000000u) / 4u];
    }
    if (a >= 0xE000E000u && a < 0xE000F000u) {
        return (uintptr_t)((uint8_t *)core + (a - 0xE000E000u));
    }
    if (a >= 0x1FFF7A10u && a < 0x1FFF7A20u) {
        return (uintptr_t)&uid[(a - 0x1FFF7A10u) / 4u];
    }
    fprintf(stderr, "driver touched unmapped address 0x%08lx\n", (unsigned long)a);
    abort();
}

void fake_regs_reset(void)
{
    memset(periph, 0, sizeof periph);
    memset(core, 0, sizeof core);
    memset(uid, 0, sizeof uid);
}

volatile uint32_t *fake_reg(uintptr_t hw_address)
{
    return (volatile uint32_t *)stm32_fake_address(hw_address);
}
