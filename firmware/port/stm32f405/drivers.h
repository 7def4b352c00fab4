/* Register-level STM32F405 drivers (RM0090). Unit-tested on the host against a fake
 * register map (STM32_FAKE_REGS, tests/test_drivers.c). */
#ifndef DRIVERS_H
#define DRIVERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sampler.h"

#define STM32_POLL_LIMIT 100000u /* ready-flag polls before a start-up step counts as failed */

/* HSE 12 MHz -> PLL -> 168 MHz, flash wait states, bus prescalers. False if the crystal or
 * the PLL does not start: the caller must not stream with an inaccurate sample clock. */
bool stm32_clock_init(void);
/* TIM5 free-running at 1 MHz: the microsecond device clock, independent of TIM2. */
void stm32_time_init(void);
uint32_t stm32_time_us(void);

/* TIM2 TRGO at 8 kHz triggers ADC1 channel 4 (PA4); DMA2 stream 0 (channel 0) writes the
 * codes circularly into the sampler's two halves, half-transfer and transfer-complete IRQs. */
void stm32_sampling_init(sampler_t *sampler);
void stm32_sampling_start(void);
/* DMA2 stream 0 interrupt body; returns the number of DMA transfer errors seen. */
uint32_t stm32_sampling_irq(sampler_t *sampler, uint32_t now_us);
/* Index of the next sample, from the DMA position (call with interrupts masked). */
uint32_t stm32_sampling_index_now(const sampler_t *sampler);

/* The two serial links of hardware/wiring.md; an image uses one of them. */
typedef enum {
    STM32_LINK_WIRED, /* USART6 (APB2): PC6 TX / PC7 RX, AF8, 8N1, no flow control */
    STM32_LINK_BLE,   /* USART3 (APB1): PB10 TX / PB11 RX, PB13 CTS / PB14 RTS, AF7, RTS/CTS */
} stm32_link_t;

/* The link's USART 8N1, its pins, clock and interrupt. Returns the BRR value used. */
uint32_t stm32_usart_init(stm32_link_t link, uint32_t baud);
bool stm32_usart_try_write(uint8_t byte);
/* Body of the link USART's interrupt (USART6_IRQHandler or USART3_IRQHandler). */
void stm32_usart_irq(void);
size_t stm32_usart_read(uint8_t *buf, size_t cap);

/* MCP6S21 PGA on SPI1 (PA5 SCK, PA7 MOSI, PC2 CS); also holds the SPI flash's CS (PA15)
 * high, as the flash shares SPI1. */
void stm32_pga_init(void);
/* The 2-byte SPI command for a gain (write gain register); false for an invalid gain. */
bool stm32_pga_command(uint8_t gain, uint8_t out[2]);
bool stm32_pga_set_gain(uint8_t gain);

#endif
