/* Host port: a scriptable fake target for unit tests (UART buffers, clock, PGA). */
#ifndef PORT_HOST_H
#define PORT_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOST_TX_CAPACITY (256u * 1024u)

void host_port_reset(void);
void host_port_set_time_us(uint32_t us);
void host_port_set_uart_ready(bool ready);
void host_port_rx_inject(const uint8_t *data, size_t len);
const uint8_t *host_port_tx(size_t *len);
void host_port_tx_clear(void);
uint8_t host_port_gain(void);
/* Pushes n samples of code into the app's sampler, as the sample interrupt would. */
void host_port_sample(const uint16_t *codes, size_t n);

#endif
