#include "board.h"
#include "drivers.h"
#include "stm32f405_regs.h"

static bool wait_set(reg32_t *reg, uint32_t mask, uint32_t value)
{
    for (uint32_t i = 0; i < STM32_POLL_LIMIT; i++) {
        if ((*reg & mask) == value) {
            return true;
        }
    }
    return false;
}

bool stm32_clock_init(void)
{
    RCC->APB1ENR |= RCC_APB1ENR_PWR;
    PWR->CR |= PWR_CR_VOS; /* scale 1: needed for 168 MHz */

    RCC->CR |= RCC_CR_HSEON;
    if (!wait_set(&RCC->CR, RCC_CR_HSERDY, RCC_CR_HSERDY)) {
        return false;
    }
    RCC->PLLCFGR = BOARD_PLL_M | (BOARD_PLL_N << 6) | (BOARD_PLL_P_DIV2 << 16) |
                   RCC_PLLCFGR_SRC_HSE | (BOARD_PLL_Q << 24);
    RCC->CR |= RCC_CR_PLLON;
    if (!wait_set(&RCC->CR, RCC_CR_PLLRDY, RCC_CR_PLLRDY)) {
        return false;
    }
    /* Wait states before the clock goes up (RM0090 3.5.1: 5 WS at 168 MHz, 2.7-3.6 V). */
    FLASH_IF->ACR = FLASH_ACR_LATENCY_5WS | FLASH_ACR_PRFTEN | FLASH_ACR_ICEN | FLASH_ACR_DCEN;
    /* Clear HPRE (AHB /1), PPRE1, PPRE2 and SW; keep SWS and the reserved bits. */
    uint32_t cfgr = RCC->CFGR & ~((0xFu << 4) | (7u << 10) | (7u << 13) | RCC_CFGR_SW_MASK);
    RCC->CFGR = cfgr | RCC_CFGR_PPRE1_DIV4 | RCC_CFGR_PPRE2_DIV2 | RCC_CFGR_SW_PLL;
    return wait_set(&RCC->CFGR, RCC_CFGR_SWS_MASK, RCC_CFGR_SWS_PLL);
}

void stm32_time_init(void)
{
    RCC->APB1ENR |= RCC_APB1ENR_TIM5;
    TIM5->PSC = BOARD_APB1_TIMER_HZ / 1000000u - 1u;
    TIM5->ARR = 0xFFFFFFFFu;
    TIM5->EGR = TIM_EGR_UG; /* load the prescaler now */
    TIM5->CR1 = TIM_CR1_CEN;
}

uint32_t stm32_time_us(void) { return TIM5->CNT; }
