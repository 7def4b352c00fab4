#include "port_host.h"

#include <string.h>

#include "app.h"
#include "port.h"

static uint8_t tx[HOST_TX_CAPACITY];
static size_t tx_len;
static uint8_t rx[4096];
static size_t rx_len, rx_pos;
static uint32_t now_us;
static bool uart_ready = true;
static uint8_t gain;

void host_port_reset(void)
{
    tx_len = 0;
    rx_len = 0;
    rx_pos = 0;
    now_us = 0;
    uart_ready = true;
    gain = 0;
}

void host_port_set_time_us(uint32_t us) { now_us = us; }
void host_port_set_uart_ready(bool ready) { uart_ready = ready; }

void host_port_rx_inject(const uint8_t *data, size_t len)
{
    if (len > sizeof rx - rx_len) {
        len = sizeof rx - rx_len;
    }
    memcpy(rx + rx_len, data, len);
    rx_len += len;
}

const uint8_t *host_port_tx(size_t *len)
{
    *len = tx_len;
    return tx;
}

void host_port_tx_clear(void) { tx_len = 0; }
uint8_t host_port_gain(void) { return gain; }

void host_port_sample(const uint16_t *codes, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sampler_push(app_sampler(), codes[i], now_us);
    }
}

uint32_t port_time_us(void) { return now_us; }

bool port_uart_try_write(uint8_t byte)
{
    if (!uart_ready || tx_len == sizeof tx) {
        return false;
    }
    tx[tx_len++] = byte;
    return true;
}

size_t port_uart_read(uint8_t *buf, size_t cap)
{
    size_t n = rx_len - rx_pos < cap ? rx_len - rx_pos : cap;
    memcpy(buf, rx + rx_pos, n);
    rx_pos += n;
    if (rx_pos == rx_len) {
        rx_pos = rx_len = 0;
    }
    return n;
}

uint32_t port_set_gain(uint8_t g)
{
    gain = g;
    return port_sample_index_now();
}

uint32_t port_sample_index_now(void)
{
    sampler_t *s = app_sampler();
    return sampler_index_at(s, s->fill);
}

uint32_t port_device_id(void) { return 0x1A2B3C4Du; }
uint32_t port_irq_save(void) { return 0; }
void port_irq_restore(uint32_t state) { (void)state; }
