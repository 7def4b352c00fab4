/* STM32F405 register map: just the peripherals this firmware touches (RM0090).
 * With STM32_FAKE_REGS the same driver code runs on the host against plain memory
 * (tests/fake_regs.c), so drivers are unit-tested without hardware. */
#ifndef STM32F405_REGS_H
#define STM32F405_REGS_H

#include <stdint.h>

#ifdef STM32_FAKE_REGS
uintptr_t stm32_fake_address(uintptr_t hw_address);
#define STM32_PERIPH(addr) stm32_fake_address((uintptr_t)(addr))
#else
#define STM32_PERIPH(addr) ((uintptr_t)(addr))
#endif

typedef volatile uint32_t reg32_t;

typedef struct {
    reg32_t CR, PLLCFGR, CFGR, CIR, AHB1RSTR, AHB2RSTR, AHB3RSTR, RESERVED0, APB1RSTR,
        APB2RSTR, RESERVED1[2], AHB1ENR, AHB2ENR, AHB3ENR, RESERVED2, APB1ENR, APB2ENR;
} rcc_t;
typedef struct {
    reg32_t ACR, KEYR, OPTKEYR, SR, CR, OPTCR;
} flash_t;
typedef struct {
    reg32_t CR, CSR;
} pwr_t;
typedef struct {
    reg32_t MODER, OTYPER, OSPEEDR, PUPDR, IDR, ODR, BSRR, LCKR, AFR[2];
} gpio_t;
typedef struct {
    reg32_t CR1, CR2, SMCR, DIER, SR, EGR, CCMR1, CCMR2, CCER, CNT, PSC, ARR, RCR, CCR[4],
        BDTR, DCR, DMAR, OR;
} tim_t;
typedef struct {
    reg32_t SR, CR1, CR2, SMPR1, SMPR2, JOFR[4], HTR, LTR, SQR1, SQR2, SQR3, JSQR, JDR[4], DR;
} adc_t;
typedef struct {
    reg32_t CSR, CCR, CDR;
} adc_common_t;
typedef struct {
    reg32_t CR, NDTR, PAR, M0AR, M1AR, FCR;
} dma_stream_t;
typedef struct {
    reg32_t LISR, HISR, LIFCR, HIFCR;
} dma_t;
typedef struct {
    reg32_t SR, DR, BRR, CR1, CR2, CR3, GTPR;
} usart_t;
typedef struct {
    reg32_t CR1, CR2, SR, DR, CRCPR, RXCRCR, TXCRCR, I2SCFGR, I2SPR;
} spi_t;
typedef struct {
    reg32_t CTRL, LOAD, VAL, CALIB;
} systick_t;

#define RCC ((rcc_t *)STM32_PERIPH(0x40023800u))
#define FLASH_IF ((flash_t *)STM32_PERIPH(0x40023C00u))
#define PWR ((pwr_t *)STM32_PERIPH(0x40007000u))
#define GPIOA ((gpio_t *)STM32_PERIPH(0x40020000u))
#define GPIOB ((gpio_t *)STM32_PERIPH(0x40020400u))
#define GPIOC ((gpio_t *)STM32_PERIPH(0x40020800u))
#define TIM2 ((tim_t *)STM32_PERIPH(0x40000000u))
#define TIM5 ((tim_t *)STM32_PERIPH(0x40000C00u))
#define ADC1 ((adc_t *)STM32_PERIPH(0x40012000u))
#define ADC_COMMON ((adc_common_t *)STM32_PERIPH(0x40012300u))
#define DMA2 ((dma_t *)STM32_PERIPH(0x40026400u))
#define DMA2_STREAM0 ((dma_stream_t *)STM32_PERIPH(0x40026410u))
#define USART2 ((usart_t *)STM32_PERIPH(0x40004400u)) /* QEMU port only */
#define USART3 ((usart_t *)STM32_PERIPH(0x40004800u))
#define USART6 ((usart_t *)STM32_PERIPH(0x40011400u))
#define SPI1 ((spi_t *)STM32_PERIPH(0x40013000u))
#define SYSTICK ((systick_t *)STM32_PERIPH(0xE000E010u))
#define NVIC_ISER ((reg32_t *)STM32_PERIPH(0xE000E100u))
#define NVIC_IPR ((volatile uint8_t *)STM32_PERIPH(0xE000E400u))
#define UID_WORDS ((const volatile uint32_t *)STM32_PERIPH(0x1FFF7A10u))

/* RCC */
#define RCC_CR_HSEON (1u << 16)
#define RCC_CR_HSERDY (1u << 17)
#define RCC_CR_PLLON (1u << 24)
#define RCC_CR_PLLRDY (1u << 25)
#define RCC_PLLCFGR_SRC_HSE (1u << 22)
#define RCC_CFGR_SW_PLL 2u
#define RCC_CFGR_SW_MASK 3u
#define RCC_CFGR_SWS_PLL (2u << 2)
#define RCC_CFGR_SWS_MASK (3u << 2)
#define RCC_CFGR_PPRE1_DIV4 (5u << 10)
#define RCC_CFGR_PPRE2_DIV2 (4u << 13)
#define RCC_AHB1ENR_GPIOA (1u << 0)
#define RCC_AHB1ENR_GPIOB (1u << 1)
#define RCC_AHB1ENR_GPIOC (1u << 2)
#define RCC_AHB1ENR_DMA2 (1u << 22)
#define RCC_APB1ENR_TIM2 (1u << 0)
#define RCC_APB1ENR_TIM5 (1u << 3)
#define RCC_APB1ENR_USART3 (1u << 18)
#define RCC_APB1ENR_PWR (1u << 28)
#define RCC_APB2ENR_USART6 (1u << 5)
#define RCC_APB2ENR_ADC1 (1u << 8)
#define RCC_APB2ENR_SPI1 (1u << 12)
/* FLASH / PWR */
#define FLASH_ACR_LATENCY_5WS 5u
#define FLASH_ACR_PRFTEN (1u << 8)
#define FLASH_ACR_ICEN (1u << 9)
#define FLASH_ACR_DCEN (1u << 10)
#define PWR_CR_VOS (1u << 14)
/* TIM */
#define TIM_CR1_CEN (1u << 0)
#define TIM_CR2_MMS_UPDATE (2u << 4)
#define TIM_EGR_UG (1u << 0)
/* ADC */
#define ADC_CR2_ADON (1u << 0)
#define ADC_CR2_DMA (1u << 8)
#define ADC_CR2_DDS (1u << 9)
#define ADC_CR2_EXTSEL_TIM2_TRGO (11u << 24)
#define ADC_CR2_EXTEN_RISING (1u << 28)
#define ADC_CR2_SWSTART (1u << 30)
#define ADC_SR_OVR (1u << 5)
#define ADC_CCR_ADCPRE_DIV4 (1u << 16)
/* DMA stream */
#define DMA_SCR_EN (1u << 0)
#define DMA_SCR_TEIE (1u << 2)
#define DMA_SCR_HTIE (1u << 3)
#define DMA_SCR_TCIE (1u << 4)
#define DMA_SCR_CIRC (1u << 8)
#define DMA_SCR_MINC (1u << 10)
#define DMA_SCR_PSIZE_16 (1u << 11)
#define DMA_SCR_MSIZE_16 (1u << 13)
#define DMA_SCR_PL_HIGH (2u << 16)
#define DMA_LISR_TEIF0 (1u << 3)
#define DMA_LISR_HTIF0 (1u << 4)
#define DMA_LISR_TCIF0 (1u << 5)
#define DMA_LIFCR_ALL0 0x3Du
/* USART */
#define USART_SR_RXNE (1u << 5)
#define USART_SR_TXE (1u << 7)
#define USART_SR_ORE (1u << 3)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_CR1_RXNEIE (1u << 5)
#define USART_CR1_UE (1u << 13)
#define USART_CR3_RTSE (1u << 8)
#define USART_CR3_CTSE (1u << 9)
/* SPI */
#define SPI_CR1_CPHA (1u << 0)
#define SPI_CR1_CPOL (1u << 1)
#define SPI_CR1_MSTR (1u << 2)
#define SPI_CR1_BR_DIV16 (3u << 3)
#define SPI_CR1_SPE (1u << 6)
#define SPI_CR1_SSI (1u << 8)
#define SPI_CR1_SSM (1u << 9)
#define SPI_SR_TXE (1u << 1)
#define SPI_SR_BSY (1u << 7)
/* SysTick */
#define SYSTICK_CTRL_ENABLE (1u << 0)
#define SYSTICK_CTRL_TICKINT (1u << 1)
#define SYSTICK_CTRL_CLKSOURCE_CPU (1u << 2)

/* GPIO MODER values */
#define GPIO_MODE_OUTPUT 1u
#define GPIO_MODE_AF 2u
#define GPIO_MODE_ANALOG 3u

/* NVIC interrupt numbers (RM0090 table 61) */
#define IRQN_TIM2 28u
#define IRQN_USART2 38u /* QEMU port only */
#define IRQN_USART3 39u
#define IRQN_DMA2_STREAM0 56u
#define IRQN_USART6 71u

/* Mode (and, for GPIO_MODE_AF, alternate function) of one pin; other pins untouched. */
static inline void gpio_configure(gpio_t *gpio, uint32_t pin, uint32_t mode, uint32_t af)
{
    uint32_t afr_shift = 4u * (pin % 8u);
    gpio->AFR[pin / 8u] = (gpio->AFR[pin / 8u] & ~(0xFu << afr_shift)) | (af << afr_shift);
    gpio->MODER = (gpio->MODER & ~(3u << (2u * pin))) | (mode << (2u * pin));
}

static inline void nvic_enable(uint32_t irqn, uint8_t priority)
{
    NVIC_IPR[irqn] = (uint8_t)(priority << 4);
    NVIC_ISER[irqn / 32u] = 1u << (irqn % 32u);
}

#endif
