#include "board.h"
#include "drivers.h"
#include "stm32f405_regs.h"

#define DMA_TRANSFERS (2u * SAMPLER_BLOCK)
_Static_assert(BOARD_ADC_CHANNEL <= 9u, "SMPR2 holds the sample times of channels 0-9");

void stm32_sampling_init(sampler_t *sampler)
{
    RCC->AHB1ENR |= RCC_AHB1ENR_GPIOA | RCC_AHB1ENR_DMA2;
    RCC->APB2ENR |= RCC_APB2ENR_ADC1;
    RCC->APB1ENR |= RCC_APB1ENR_TIM2;

    gpio_configure(GPIOA, BOARD_ADC_PIN, GPIO_MODE_ANALOG, 0u);

    /* ADC1: 12-bit, 21 MHz ADC clock, one conversion of channel 4 per TIM2 TRGO edge. */
    ADC_COMMON->CCR = ADC_CCR_ADCPRE_DIV4;
    ADC1->CR1 = 0;
    /* 84 cycles: frontend.md asks >= 56 for the R13/C15 source at A0. */
    ADC1->SMPR1 = 0;
    ADC1->SMPR2 = 4u << (3u * BOARD_ADC_CHANNEL);
    ADC1->SQR1 = 0;
    ADC1->SQR3 = BOARD_ADC_CHANNEL;
    ADC1->CR2 = ADC_CR2_ADON | ADC_CR2_DMA | ADC_CR2_DDS | ADC_CR2_EXTSEL_TIM2_TRGO |
                ADC_CR2_EXTEN_RISING;

    /* DMA2 stream 0, channel 0 (ADC1), peripheral to memory, circular over both halves. */
    DMA2_STREAM0->CR = 0;
    for (uint32_t i = 0; i < STM32_POLL_LIMIT && (DMA2_STREAM0->CR & DMA_SCR_EN); i++) {
    }
    DMA2->LIFCR = DMA_LIFCR_ALL0;
    DMA2_STREAM0->PAR = (uint32_t)(uintptr_t)&ADC1->DR;
    DMA2_STREAM0->M0AR = (uint32_t)(uintptr_t)&sampler->buf[0][0];
    DMA2_STREAM0->NDTR = DMA_TRANSFERS;
    DMA2_STREAM0->CR = DMA_SCR_PL_HIGH | DMA_SCR_MSIZE_16 | DMA_SCR_PSIZE_16 | DMA_SCR_MINC |
                       DMA_SCR_CIRC | DMA_SCR_HTIE | DMA_SCR_TCIE | DMA_SCR_TEIE;
    DMA2_STREAM0->CR |= DMA_SCR_EN;
    nvic_enable(IRQN_DMA2_STREAM0, 1);

    /* TIM2: 84 MHz / 10500 = 8000 Hz exactly; update event drives TRGO. */
    TIM2->PSC = 0;
    TIM2->ARR = BOARD_APB1_TIMER_HZ / SAMPLE_RATE_HZ - 1u;
    TIM2->CR2 = TIM_CR2_MMS_UPDATE;
    TIM2->EGR = TIM_EGR_UG;
}

void stm32_sampling_start(void) { TIM2->CR1 = TIM_CR1_CEN; }

uint32_t stm32_sampling_irq(sampler_t *sampler, uint32_t now_us)
{
    uint32_t flags = DMA2->LISR;
    uint32_t errors = 0;
    if (flags & DMA_LISR_TEIF0) {
        DMA2->LIFCR = DMA_LISR_TEIF0;
        errors++;
    }
    if (flags & DMA_LISR_HTIF0) {
        DMA2->LIFCR = DMA_LISR_HTIF0;
        sampler_half_done(sampler, 0, now_us);
    }
    if (flags & DMA_LISR_TCIF0) {
        DMA2->LIFCR = DMA_LISR_TCIF0;
        sampler_half_done(sampler, 1, now_us);
    }
    return errors;
}

uint32_t stm32_sampling_index_now(const sampler_t *sampler)
{
    uint32_t remaining = DMA2_STREAM0->NDTR; /* counts down, reloads at the wrap */
    uint32_t written =
        (remaining == 0u || remaining > DMA_TRANSFERS) ? 0u : DMA_TRANSFERS - remaining;
    uint32_t dma_half = written / SAMPLER_BLOCK;
    uint32_t in_half = written % SAMPLER_BLOCK;
    /* The DMA may already be in the next half while its interrupt is still pending. */
    uint32_t extra = dma_half == sampler->active ? 0u : SAMPLER_BLOCK;
    return sampler_index_at(sampler, extra + in_half);
}
