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

/* TIM2 TRGO at 8 kHz triggers ADC1 channel 14; DMA2 stream 0 (channel 0) writes the codes
 * circularly into the sampler's two halves, half-transfer and transfer-complete IRQs. */
void stm32_sampling_init(sampler_t *sampler);
void stm32_sampling_start(void);
/* DMA2 stream 0 interrupt body; returns the number of DMA transfer errors seen. */
uint32_t stm32_sampling_irq(sampler_t *sampler, uint32_t now_us);
/* Index of the next sample, from the DMA position (call with interrupts masked). */
uint32_t stm32_sampling_index_now(const sampler_t *sampler);

/* USART2 8N1; flow_control enables RTS/CTS (BLE module). Returns the BRR value used. */
uint32_t stm32_usart2_init(uint32_t baud, bool flow_control);
bool stm32_usart2_try_write(uint8_t byte);
void stm32_usart2_irq(void);
size_t stm32_usart2_read(uint8_t *buf, size_t cap);

/* MCP6S21 PGA on SPI1. */
void stm32_pga_init(void);
/* The 2-byte SPI command for a gain (write gain register); false for an invalid gain. */
bool stm32_pga_command(uint8_t gain, uint8_t out[2]);
bool stm32_pga_set_gain(uint8_t gain);

#endif
