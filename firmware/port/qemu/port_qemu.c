/* QEMU netduinoplus2 port (STM32F405 as QEMU emulates it).
 *
 * QEMU's STM32 ADC never raises end-of-conversion and answers every software-started read
 * with the next value of a ramp (previous + 7, modulo 4096); RCC and DMA are not emulated.
 * So the sample clock is SysTick at 8 kHz, whose handler starts a conversion, reads the
 * ramp and pushes it into the same sampler the board's DMA feeds. The PGA is modelled
 * digitally: code = 2048 + (ramp - 2048) * gain / 32. TIM5 runs free at 1 MHz as the
 * independent device clock (STATUS uptime_us). With `-icount` all of this is deterministic,
 * which is what tests/firmware/test_qemu_e2e.py checks bit for bit. Built with
 * -DQEMU_LINK_BLE it behaves as the BLE image (ADPCM, paced to QEMU_BLE_PACE_BYTES_PER_S).
 *
 * The main loop polls instead of sleeping: in QEMU 7.2 with -icount, SysTick periods that
 * end while the core sits in WFI come out twice as long (measured: 8000 ticks took 2.0 s of
 * TIM5 time with WFI, 1.0 s without), which would break the exact sample clock.
 */
#include "app.h"
#include "cortexm.h"
#include "port.h"
#include "proto.h"
#include "stm32f405_regs.h"

#define QEMU_CPU_HZ 168000000u    /* netduinoplus2 SYSCLK */
#define QEMU_TIMER_HZ 1000000000u /* QEMU clocks its STM32 timers at 1 GHz */
#define QEMU_DEVICE_ID 0x0E0E0001u
#define RX_RING 256u
#ifndef QEMU_BLE_PACE_BYTES_PER_S
#define QEMU_BLE_PACE_BYTES_PER_S 6000u /* board.h BOARD_BLE_PACE_BYTES_PER_S */
#endif

static volatile uint8_t gain = 1;
static volatile uint8_t rx_ring[RX_RING];
static volatile uint32_t rx_head, rx_tail;

void SysTick_Handler(void);
void USART2_IRQHandler(void);

void SysTick_Handler(void)
{
    ADC1->CR2 |= ADC_CR2_SWSTART;
    int32_t ramp = (int32_t)(ADC1->DR & 0xFFFu);
    int32_t code = 2048 + (ramp - 2048) * (int32_t)gain / 32;
    sampler_push(app_sampler(), (uint16_t)code, TIM5->CNT);
}

void USART2_IRQHandler(void)
{
    while (USART2->SR & USART_SR_RXNE) {
        uint8_t byte = (uint8_t)USART2->DR;
        if (rx_head - rx_tail < RX_RING) {
            rx_ring[rx_head % RX_RING] = byte;
            rx_head++;
        }
    }
}

uint32_t port_time_us(void) { return TIM5->CNT; }

bool port_uart_try_write(uint8_t byte)
{
    if (!(USART2->SR & USART_SR_TXE)) {
        return false;
    }
    USART2->DR = byte;
    return true;
}

size_t port_uart_read(uint8_t *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap && rx_tail != rx_head) {
        buf[n++] = rx_ring[rx_tail % RX_RING];
        rx_tail++;
    }
    return n;
}

uint32_t port_sample_index_now(void)
{
    uint32_t irq = cortexm_irq_save();
    sampler_t *s = app_sampler();
    uint32_t index = sampler_index_at(s, s->fill);
    cortexm_irq_restore(irq);
    return index;
}

uint32_t port_set_gain(uint8_t g)
{
    uint32_t irq = cortexm_irq_save();
    gain = g;
    sampler_t *s = app_sampler();
    uint32_t index = sampler_index_at(s, s->fill); /* the next tick uses the new gain */
    cortexm_irq_restore(irq);
    return index;
}

uint32_t port_device_id(void) { return QEMU_DEVICE_ID; }
uint32_t port_irq_save(void) { return cortexm_irq_save(); }
void port_irq_restore(uint32_t state) { cortexm_irq_restore(state); }

int main(void)
{
    USART2->CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
    nvic_enable(IRQN_USART2, 2);

    TIM5->PSC = QEMU_TIMER_HZ / 1000000u - 1u;
    TIM5->EGR = TIM_EGR_UG;
    TIM5->CR1 = TIM_CR1_CEN;

    ADC1->CR2 = ADC_CR2_ADON;

#ifdef QEMU_LINK_BLE
    /* As the board's BLE image: ADPCM paced for the radio (no CTS in QEMU's USART). */
    const app_config_t config = {
        .link = PROTO_LINK_BLE,
        .codec = PROTO_CODEC_ADPCM,
        .gain = 8,
        .pace_bytes_per_s = QEMU_BLE_PACE_BYTES_PER_S,
    };
#else
    const app_config_t config = {
        .link = PROTO_LINK_UART,
        .codec = PROTO_CODEC_PCM16,
        .gain = 1,
        .pace_bytes_per_s = 0,
    };
#endif
    app_init(&config);

    SYSTICK->LOAD = QEMU_CPU_HZ / SAMPLE_RATE_HZ - 1u;
    SYSTICK->VAL = 0;
    SYSTICK->CTRL = SYSTICK_CTRL_ENABLE | SYSTICK_CTRL_TICKINT | SYSTICK_CTRL_CLKSOURCE_CPU;

    for (;;) {
        (void)app_poll();
    }
}
