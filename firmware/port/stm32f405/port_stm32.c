/* Adafruit Feather STM32F405 Express port: wires the register-level drivers to port.h.
 * Wired build: USART6 (D6/D5) 921600 to the FT232R, PCM16. BLE build (-DBOARD_LINK_BLE):
 * USART3 (TX/RX, RTS/CTS on MISO/SCK) 460800 to the MDBT42Q, IMA-ADPCM paced to the radio
 * budget. */
#include "app.h"
#include "board.h"
#include "cortexm.h"
#include "drivers.h"
#include "port.h"
#include "proto.h"
#include "stm32f405_regs.h"

void DMA2_Stream0_IRQHandler(void);
void DMA2_Stream0_IRQHandler(void) { (void)stm32_sampling_irq(app_sampler(), stm32_time_us()); }

#ifdef BOARD_LINK_BLE
void USART3_IRQHandler(void);
void USART3_IRQHandler(void) { stm32_usart_irq(); }
#else
void USART6_IRQHandler(void);
void USART6_IRQHandler(void) { stm32_usart_irq(); }
#endif

uint32_t port_time_us(void) { return stm32_time_us(); }
bool port_uart_try_write(uint8_t byte) { return stm32_usart_try_write(byte); }
size_t port_uart_read(uint8_t *buf, size_t cap) { return stm32_usart_read(buf, cap); }

uint32_t port_sample_index_now(void)
{
    uint32_t irq = cortexm_irq_save();
    uint32_t index = stm32_sampling_index_now(app_sampler());
    cortexm_irq_restore(irq);
    return index;
}

uint32_t port_set_gain(uint8_t gain)
{
    (void)stm32_pga_set_gain(gain); /* the app validated the gain */
    return port_sample_index_now();
}

uint32_t port_device_id(void) { return UID_WORDS[0] ^ UID_WORDS[1] ^ UID_WORDS[2]; }
uint32_t port_irq_save(void) { return cortexm_irq_save(); }
void port_irq_restore(uint32_t state) { cortexm_irq_restore(state); }

int main(void)
{
    if (!stm32_clock_init()) {
        /* No crystal, no accurate sample clock: stay silent; the edge reports a lost
         * signal rather than mis-timed audio. */
        for (;;) {
            cortexm_wait_for_interrupt();
        }
    }
    stm32_time_init();
#ifdef BOARD_LINK_BLE
    (void)stm32_usart_init(STM32_LINK_BLE, BOARD_UART_BAUD_BLE);
    const app_config_t config = {.link = PROTO_LINK_BLE, .codec = PROTO_CODEC_ADPCM,
                                 .gain = 8, .pace_bytes_per_s = BOARD_BLE_PACE_BYTES_PER_S};
#else
    (void)stm32_usart_init(STM32_LINK_WIRED, BOARD_UART_BAUD_WIRED);
    const app_config_t config = {.link = PROTO_LINK_UART, .codec = PROTO_CODEC_PCM16,
                                 .gain = 8, .pace_bytes_per_s = 0};
#endif
    stm32_pga_init();
    app_init(&config);
    stm32_sampling_init(app_sampler());
    stm32_sampling_start();
    for (;;) {
        if (!app_poll()) {
            cortexm_wait_for_interrupt();
        }
    }
}
