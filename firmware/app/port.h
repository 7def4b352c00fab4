/* Port layer: everything the shared application needs from a target, and nothing more.
 * Implemented by port/host (unit tests), port/qemu (netduinoplus2) and port/stm32f405. */
#ifndef PORT_H
#define PORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Free-running microsecond clock, independent of the sample clock; wraps modulo 2^32. */
uint32_t port_time_us(void);
/* Hands one byte to the UART if its transmit register is free. */
bool port_uart_try_write(uint8_t byte);
/* Copies up to cap received bytes (non-blocking); returns how many. */
size_t port_uart_read(uint8_t *buf, size_t cap);
/* Programs the PGA; returns the sample index of the first sample taken with the new gain. */
uint32_t port_set_gain(uint8_t gain);
/* Index of the next sample to be acquired. */
uint32_t port_sample_index_now(void);
/* Device identity for DEVICE_INFO (XOR of the MCU's unique-ID words). */
uint32_t port_device_id(void);
/* Interrupt masking around data shared with sample interrupts. */
uint32_t port_irq_save(void);
void port_irq_restore(uint32_t state);

#endif
