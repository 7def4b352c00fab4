/* Register-level drivers against the fake register map: the values written must be the
 * ones RM0090 asks for. Ready flags the hardware would raise are preset by the test. */
#include "board.h"
#include "check.h"
#include "drivers.h"
#include "fake_regs.h"
#include "sampler.h"
#include "stm32f405_regs.h"

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
    CHECK_EQ(ADC1->SQR3 & 0x1Fu, 14);
    CHECK_EQ((ADC1->SMPR1 >> 12) & 7u, 4);     /* channel 14: 84 cycles */
    CHECK_EQ((ADC1->CR1 >> 24) & 3u, 0);       /* 12-bit */
    CHECK_EQ((ADC_COMMON->CCR >> 16) & 3u, 1); /* 84 MHz / 4 = 21 MHz */
    CHECK_EQ((GPIOC->MODER >> 8) & 3u, 3);     /* PC4 analog */
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

void test_stm32_usart(void)
{
    fake_regs_reset();
    uint32_t brr = stm32_usart2_init(921600, false);
    CHECK_EQ(brr, 46);                         /* 42 MHz / 921600 = 45.57 */
    CHECK_EQ(USART2->BRR, 46);
    CHECK(42000000u / brr > 913000u && 42000000u / brr < 914000u); /* -0.93 % */
    CHECK_EQ(USART2->CR1, USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE);
    CHECK_EQ(USART2->CR3, 0);
    CHECK_EQ((GPIOA->MODER >> 4) & 0xFu, 0xA); /* PA2, PA3 alternate */
    CHECK_EQ((GPIOA->AFR[0] >> 8) & 0xFFu, 0x77);
    CHECK(*fake_reg(0xE000E104u) & (1u << (IRQN_USART2 - 32u)));
    CHECK(!stm32_usart2_try_write(0x41));      /* TXE clear: busy */
    USART2->SR = USART_SR_TXE;
    CHECK(stm32_usart2_try_write(0x41));
    CHECK_EQ(USART2->DR, 0x41);
    USART2->SR = USART_SR_RXNE;
    USART2->DR = 0xA5;
    stm32_usart2_irq();
    USART2->DR = 0x5A;
    stm32_usart2_irq();
    uint8_t got[4] = {0};
    CHECK_EQ(stm32_usart2_read(got, sizeof got), 2);
    CHECK(got[0] == 0xA5 && got[1] == 0x5A);
    CHECK_EQ(stm32_usart2_read(got, sizeof got), 0);

    fake_regs_reset();
    CHECK_EQ(stm32_usart2_init(460800, true), 91); /* 42 MHz / 460800 = 91.1 */
    CHECK_EQ(USART2->CR3, USART_CR3_RTSE | USART_CR3_CTSE);
    CHECK_EQ(GPIOA->MODER & 0xFFu, 0xAA);      /* PA0..PA3 alternate */
    CHECK_EQ(GPIOA->AFR[0] & 0xFFFFu, 0x7777);
}

void test_stm32_pga(void)
{
    fake_regs_reset();
    stm32_pga_init();
    uint32_t cr1 = SPI1->CR1;
    CHECK(cr1 & SPI_CR1_MSTR && cr1 & SPI_CR1_SPE && cr1 & SPI_CR1_SSM && cr1 & SPI_CR1_SSI);
    CHECK_EQ(cr1 & (SPI_CR1_CPOL | SPI_CR1_CPHA), 0); /* mode 0,0 */
    CHECK_EQ((cr1 >> 3) & 7u, 3);                      /* 84 MHz / 16 = 5.25 MHz */
    CHECK_EQ((GPIOA->MODER >> 8) & 3u, 1);            /* PA4 CS output */
    CHECK_EQ((GPIOA->MODER >> 10) & 3u, 2);           /* PA5 SCK AF */
    CHECK_EQ((GPIOA->MODER >> 14) & 3u, 2);           /* PA7 MOSI AF */
    CHECK_EQ((GPIOA->AFR[0] >> 20) & 0xFu, 5);
    CHECK_EQ((GPIOA->AFR[0] >> 28) & 0xFu, 5);
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
    CHECK_EQ(GPIOA->BSRR, 1u << 4);                    /* CS released */
    CHECK(!stm32_pga_set_gain(3));
    SPI1->SR = SPI_SR_BSY;                             /* a stuck bus times out */
    CHECK(!stm32_pga_set_gain(2));
    CHECK_EQ(GPIOA->BSRR, 1u << 4);                    /* and still releases CS */
}
