/* Register-level drivers against the fake register map: the values written must be the
 * ones RM0090 asks for. Ready flags the hardware would raise are preset by the test. */
#include "board.h"
#include "check.h"
#include "drivers.h"
#include "fake_regs.h"
#include "sampler.h"
#include "stm32f405_regs.h"

/* Registers by their RM0090 addresses, independent of stm32f405_regs.h: a wrong base
 * address, enable bit or IRQ number in the header fails here. */
#define HW_RCC_AHB1ENR 0x40023830u
#define HW_RCC_APB1ENR 0x40023840u
#define HW_RCC_APB2ENR 0x40023844u
#define HW_GPIOA 0x40020000u
#define HW_GPIOB 0x40020400u
#define HW_GPIOC 0x40020800u
#define HW_USART2 0x40004400u
#define HW_USART3 0x40004800u
#define HW_USART6 0x40011400u
#define HW_NVIC_ISER 0xE000E100u
#define GPIO_MODER 0x00u
#define GPIO_BSRR 0x18u
#define GPIO_AFRL 0x20u
#define GPIO_AFRH 0x24u
#define USART_SR 0x00u
#define USART_DR 0x04u
#define USART_BRR 0x08u
#define USART_CR1 0x0Cu
#define USART_CR3 0x14u

static uint32_t hw(uintptr_t address) { return *fake_reg(address); }

static bool irq_enabled(uint32_t irqn)
{
    return (hw(HW_NVIC_ISER + 4u * (irqn / 32u)) >> (irqn % 32u)) & 1u;
}

void test_stm32_clock(void)
{
    fake_regs_reset();
    RCC->CR = RCC_CR_HSERDY | RCC_CR_PLLRDY;   /* the oscillator and PLL lock */
    RCC->CFGR = RCC_CFGR_SWS_PLL;              /* the switch to PLL completes */
    CHECK(stm32_clock_init());
    CHECK(RCC->CR & RCC_CR_HSEON);
    CHECK(RCC->CR & RCC_CR_PLLON);
    uint32_t pll = RCC->PLLCFGR;
    CHECK_EQ(pll & 0x3Fu, 6);                  /* M */
    CHECK_EQ((pll >> 6) & 0x1FFu, 168);        /* N */
    CHECK_EQ((pll >> 16) & 3u, 0);             /* P = 2 */
    CHECK_EQ((pll >> 24) & 0xFu, 7);           /* Q */
    CHECK(pll & RCC_PLLCFGR_SRC_HSE);
    CHECK_EQ(BOARD_HSE_HZ / 6u * 168u / 2u, BOARD_SYSCLK_HZ);
    CHECK_EQ(FLASH_IF->ACR & 0xFu, 5);
    CHECK_EQ(RCC->CFGR & RCC_CFGR_SW_MASK, RCC_CFGR_SW_PLL);
    CHECK_EQ((RCC->CFGR >> 4) & 0xFu, 0);      /* AHB /1 */
    CHECK_EQ((RCC->CFGR >> 10) & 7u, 5);       /* APB1 /4 = 42 MHz */
    CHECK_EQ((RCC->CFGR >> 13) & 7u, 4);       /* APB2 /2 = 84 MHz */
    CHECK(PWR->CR & PWR_CR_VOS);
    stm32_time_init();
    CHECK_EQ(TIM5->PSC, 83);                   /* 84 MHz / 84 = 1 MHz */
    CHECK_EQ(TIM5->ARR, 0xFFFFFFFFu);
    CHECK(TIM5->CR1 & TIM_CR1_CEN);
    TIM5->CNT = 123456;
    CHECK_EQ(stm32_time_us(), 123456);
}

void test_stm32_clock_hse_timeout(void)
{
    fake_regs_reset(); /* HSERDY never rises: a missing crystal */
    CHECK(!stm32_clock_init());
    CHECK(!(RCC->CR & RCC_CR_PLLON));
    CHECK_EQ(RCC->CFGR & RCC_CFGR_SW_MASK, 0); /* still on HSI */
    fake_regs_reset();
    RCC->CR = RCC_CR_HSERDY;                   /* PLL never locks */
    CHECK(!stm32_clock_init());
    CHECK_EQ(RCC->CFGR & RCC_CFGR_SW_MASK, 0);
}

void test_stm32_sampling(void)
{
    fake_regs_reset();
    static sampler_t s;
    sampler_init(&s);
    stm32_sampling_init(&s);
    CHECK_EQ(TIM2->PSC, 0);
    CHECK_EQ(TIM2->ARR + 1u, 10500);           /* 84 MHz / 10500 = 8000 Hz */
    CHECK_EQ(BOARD_APB1_TIMER_HZ / (TIM2->ARR + 1u), 8000);
    CHECK_EQ(TIM2->CR2 & (7u << 4), TIM_CR2_MMS_UPDATE);
    CHECK(!(TIM2->CR1 & TIM_CR1_CEN));         /* not before start */
    uint32_t cr2 = ADC1->CR2;
    CHECK(cr2 & ADC_CR2_ADON);
    CHECK(cr2 & ADC_CR2_DMA);
    CHECK(cr2 & ADC_CR2_DDS);
    CHECK_EQ((cr2 >> 24) & 0xFu, 11);          /* EXTSEL = TIM2 TRGO */
    CHECK_EQ((cr2 >> 28) & 3u, 1);             /* rising edge */
    CHECK(!(cr2 & ADC_CR2_SWSTART));
    CHECK_EQ(ADC1->SQR3, 4);                   /* one conversion: channel 4 */
    CHECK_EQ((ADC1->SQR1 >> 20) & 0xFu, 0);    /* sequence length 1 */
    CHECK_EQ((ADC1->SMPR2 >> 12) & 7u, 4);     /* channel 4: 84 cycles (>= 56) */
    CHECK_EQ((ADC1->CR1 >> 24) & 3u, 0);       /* 12-bit */
    CHECK_EQ((ADC_COMMON->CCR >> 16) & 3u, 1); /* 84 MHz / 4 = 21 MHz */
    CHECK_EQ(hw(HW_GPIOA + GPIO_MODER), 3u << 8); /* PA4 (A0) analog, nothing else */
    CHECK(hw(HW_RCC_AHB1ENR) & (1u << 0));     /* GPIOAEN */
    CHECK_EQ(hw(HW_GPIOC + GPIO_MODER), 0);
    CHECK_EQ(DMA2_STREAM0->PAR, (uint32_t)(uintptr_t)&ADC1->DR);
    CHECK_EQ(DMA2_STREAM0->M0AR, (uint32_t)(uintptr_t)&s.buf[0][0]);
    CHECK_EQ(DMA2_STREAM0->NDTR, 2 * SAMPLER_BLOCK);
    uint32_t cr = DMA2_STREAM0->CR;
    CHECK_EQ((cr >> 25) & 7u, 0);              /* channel 0 = ADC1 */
    CHECK_EQ((cr >> 6) & 3u, 0);               /* peripheral to memory */
    CHECK(cr & DMA_SCR_CIRC);
    CHECK(cr & DMA_SCR_MINC);
    CHECK_EQ((cr >> 11) & 3u, 1);              /* 16-bit peripheral */
    CHECK_EQ((cr >> 13) & 3u, 1);              /* 16-bit memory */
    CHECK(cr & DMA_SCR_HTIE && cr & DMA_SCR_TCIE && cr & DMA_SCR_TEIE && cr & DMA_SCR_EN);
    CHECK(*fake_reg(0xE000E104u) & (1u << (IRQN_DMA2_STREAM0 - 32u)));
    stm32_sampling_start();
    CHECK(TIM2->CR1 & TIM_CR1_CEN);

    /* The DMA fills half 0 and raises half-transfer. */
    for (uint32_t i = 0; i < SAMPLER_BLOCK; i++) {
        s.buf[0][i] = (uint16_t)(100 + i);
    }
    DMA2->LISR = DMA_LISR_HTIF0;
    DMA2_STREAM0->NDTR = SAMPLER_BLOCK - 3u; /* already 3 samples into half 1 */
    CHECK_EQ(stm32_sampling_index_now(&s), SAMPLER_BLOCK + 3u); /* IRQ still pending */
    CHECK_EQ(stm32_sampling_irq(&s, 777), 0);
    CHECK_EQ(DMA2->LIFCR, DMA_LISR_HTIF0);
    CHECK_EQ(stm32_sampling_index_now(&s), SAMPLER_BLOCK + 3u);
    sampler_block_t b;
    CHECK(sampler_take(&s, &b));
    CHECK_EQ(b.start_index, 0);
    CHECK_EQ(b.codes[5], 105);
    CHECK_EQ(b.time_us, 777);
    /* Transfer complete plus a transfer error. */
    DMA2->LISR = DMA_LISR_TCIF0 | DMA_LISR_TEIF0;
    CHECK_EQ(stm32_sampling_irq(&s, 20777), 1);
    CHECK(sampler_take(&s, &b));
    CHECK_EQ(b.start_index, SAMPLER_BLOCK);
    DMA2_STREAM0->NDTR = 2 * SAMPLER_BLOCK; /* reloaded: at the start of half 0 */
    CHECK_EQ(stm32_sampling_index_now(&s), 2 * SAMPLER_BLOCK);
}

static void check_link_echo(uintptr_t usart)
{
    CHECK(!stm32_usart_try_write(0x41));       /* TXE clear: busy */
    *fake_reg(usart + USART_SR) = 1u << 7;     /* TXE */
    CHECK(stm32_usart_try_write(0x41));
    CHECK_EQ(hw(usart + USART_DR), 0x41);
    *fake_reg(usart + USART_SR) = 1u << 5;     /* RXNE */
    *fake_reg(usart + USART_DR) = 0xA5;
    stm32_usart_irq();
    *fake_reg(usart + USART_SR) = 1u << 3;     /* ORE alone: the byte is still taken */
    *fake_reg(usart + USART_DR) = 0x5A;
    stm32_usart_irq();
    *fake_reg(usart + USART_SR) = 0;           /* spurious: nothing read */
    *fake_reg(usart + USART_DR) = 0xEE;
    stm32_usart_irq();
    uint8_t got[4] = {0};
    CHECK_EQ(stm32_usart_read(got, sizeof got), 2);
    CHECK(got[0] == 0xA5 && got[1] == 0x5A);
    CHECK_EQ(stm32_usart_read(got, sizeof got), 0);
}

void test_stm32_usart_wired(void)
{
    fake_regs_reset();
    uint32_t brr = stm32_usart_init(STM32_LINK_WIRED, BOARD_UART_BAUD_WIRED);
    CHECK_EQ(brr, 91);                          /* APB2 84 MHz / 921600 = 91.15 */
    CHECK_EQ(hw(HW_USART6 + USART_BRR), 91);
    CHECK(84000000u / brr > 922000u && 84000000u / brr < 924000u); /* +0.16 % */
    CHECK_EQ(hw(HW_USART6 + USART_CR1), (1u << 13) | (1u << 5) | (1u << 3) | (1u << 2));
    CHECK_EQ(hw(HW_USART6 + USART_CR3), 0);    /* J2's CTS/RTS are not wired */
    CHECK(hw(HW_RCC_APB2ENR) & (1u << 5));     /* USART6EN */
    CHECK(hw(HW_RCC_AHB1ENR) & (1u << 2));     /* GPIOCEN */
    CHECK_EQ(hw(HW_RCC_APB1ENR), 0);           /* no USART2/USART3 clock */
    CHECK_EQ(hw(HW_GPIOC + GPIO_MODER), 0xAu << 12);  /* PC6, PC7 alternate, rest untouched */
    CHECK_EQ(hw(HW_GPIOC + GPIO_AFRL), 0x88u << 24);  /* AF8 */
    CHECK_EQ(hw(HW_GPIOA + GPIO_MODER) | hw(HW_GPIOB + GPIO_MODER), 0);
    CHECK(irq_enabled(71));                     /* USART6 */
    CHECK(!irq_enabled(38) && !irq_enabled(39));
    CHECK_EQ(NVIC_IPR[71], 2u << 4);           /* priority 2 */
    CHECK_EQ(hw(HW_USART2 + USART_CR1) | hw(HW_USART3 + USART_CR1), 0);
    check_link_echo(HW_USART6);
}

void test_stm32_usart_ble(void)
{
    fake_regs_reset();
    uint32_t brr = stm32_usart_init(STM32_LINK_BLE, BOARD_UART_BAUD_BLE);
    CHECK_EQ(brr, 91);                          /* APB1 42 MHz / 460800 = 91.15 */
    CHECK_EQ(hw(HW_USART3 + USART_BRR), 91);
    CHECK(42000000u / brr > 461000u && 42000000u / brr < 462000u); /* +0.16 % */
    CHECK_EQ(hw(HW_USART3 + USART_CR1), (1u << 13) | (1u << 5) | (1u << 3) | (1u << 2));
    CHECK_EQ(hw(HW_USART3 + USART_CR3), (1u << 8) | (1u << 9)); /* RTSE | CTSE */
    CHECK(hw(HW_RCC_APB1ENR) & (1u << 18));    /* USART3EN */
    CHECK(!(hw(HW_RCC_APB1ENR) & (1u << 17))); /* not USART2 */
    CHECK(hw(HW_RCC_AHB1ENR) & (1u << 1));     /* GPIOBEN */
    CHECK_EQ(hw(HW_RCC_APB2ENR), 0);
    /* PB10 TX, PB11 RX, PB13 CTS, PB14 RTS alternate (AF7); PB12 and PB15 untouched. */
    CHECK_EQ(hw(HW_GPIOB + GPIO_MODER), 0x28A00000u);
    CHECK_EQ(hw(HW_GPIOB + GPIO_AFRH), 0x07707700u);
    CHECK_EQ(hw(HW_GPIOB + GPIO_AFRL), 0);
    CHECK_EQ(hw(HW_GPIOA + GPIO_MODER) | hw(HW_GPIOC + GPIO_MODER), 0);
    CHECK(irq_enabled(39));                     /* USART3 */
    CHECK(!irq_enabled(38) && !irq_enabled(71));
    CHECK_EQ(hw(HW_USART2 + USART_CR1) | hw(HW_USART6 + USART_CR1), 0);
    check_link_echo(HW_USART3);
}

void test_stm32_pga(void)
{
    fake_regs_reset();
    stm32_pga_init();
    uint32_t cr1 = SPI1->CR1;
    CHECK(cr1 & SPI_CR1_MSTR && cr1 & SPI_CR1_SPE && cr1 & SPI_CR1_SSM && cr1 & SPI_CR1_SSI);
    CHECK_EQ(cr1 & (SPI_CR1_CPOL | SPI_CR1_CPHA), 0); /* mode 0,0 */
    CHECK_EQ((cr1 >> 3) & 7u, 3);                      /* 84 MHz / 16 = 5.25 MHz */
    CHECK(hw(HW_RCC_APB2ENR) & (1u << 12));           /* SPI1EN */
    CHECK((hw(HW_RCC_AHB1ENR) & 5u) == 5u);           /* GPIOA, GPIOC */
    /* PA5 SCK, PA7 MOSI alternate (AF5); PA15 (flash CS) output; PA4 left for the ADC. */
    CHECK_EQ(hw(HW_GPIOA + GPIO_MODER), (2u << 10) | (2u << 14) | (1u << 30));
    CHECK_EQ(hw(HW_GPIOA + GPIO_AFRL), (5u << 20) | (5u << 28));
    CHECK_EQ(hw(HW_GPIOA + GPIO_AFRH), 0);            /* PA15 leaves JTDI (AF0) */
    CHECK_EQ(hw(HW_GPIOA + GPIO_BSRR), 1u << 15);     /* flash CS driven high */
    CHECK_EQ(hw(HW_GPIOC + GPIO_MODER), 1u << 4);     /* PC2 (D12) PGA CS output */
    CHECK_EQ(hw(HW_GPIOC + GPIO_BSRR), 1u << 2);      /* deselected */
    /* The flash's own SPI1 pins PB3-PB5 stay unconfigured. */
    CHECK_EQ(hw(HW_GPIOB + GPIO_MODER) | hw(HW_GPIOB + GPIO_AFRL), 0);
    const uint8_t gains[8] = {1, 2, 4, 5, 8, 10, 16, 32};
    for (uint8_t code = 0; code < 8; code++) {
        uint8_t cmd[2];
        CHECK(stm32_pga_command(gains[code], cmd));
        CHECK(cmd[0] == 0x40 && cmd[1] == code);
    }
    uint8_t cmd[2];
    CHECK(!stm32_pga_command(3, cmd));
    CHECK(!stm32_pga_command(0, cmd));
    SPI1->SR = SPI_SR_TXE; /* idle, ready */
    CHECK(stm32_pga_set_gain(16));
    CHECK_EQ(SPI1->DR, 6);                             /* last byte: code for x16 */
    CHECK_EQ(hw(HW_GPIOC + GPIO_BSRR), 1u << 2);       /* CS released */
    CHECK_EQ(hw(HW_GPIOA + GPIO_BSRR), 1u << 15);      /* flash CS never touched */
    CHECK(!stm32_pga_set_gain(3));
    SPI1->SR = SPI_SR_BSY;                             /* a stuck bus times out */
    CHECK(!stm32_pga_set_gain(2));
    CHECK_EQ(hw(HW_GPIOC + GPIO_BSRR), 1u << 2);       /* and still releases CS */
}
