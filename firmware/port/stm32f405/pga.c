#include "board.h"
#include "drivers.h"
#include "stm32f405_regs.h"

#define MCP6S2X_WRITE_GAIN 0x40u /* instruction: write register, address 0 (gain) */

static const uint8_t gains[8] = {1, 2, 4, 5, 8, 10, 16, 32}; /* gain register codes 0..7 */

void stm32_pga_init(void)
{
    RCC->AHB1ENR |= RCC_AHB1ENR_GPIOA | RCC_AHB1ENR_GPIOC;
    RCC->APB2ENR |= RCC_APB2ENR_SPI1;
    /* The SPI flash on SPI1 (PB3-PB5) must never answer: its CS is driven high before the
     * bus clocks. PA15 leaves its reset function (JTDI, SWD is unaffected). */
    GPIOA->BSRR = 1u << BOARD_FLASH_CS_PIN;
    gpio_configure(GPIOA, BOARD_FLASH_CS_PIN, GPIO_MODE_OUTPUT, 0u);
    GPIOC->BSRR = 1u << BOARD_PGA_CS_PIN; /* deselected before it becomes an output */
    gpio_configure(GPIOC, BOARD_PGA_CS_PIN, GPIO_MODE_OUTPUT, 0u);
    gpio_configure(GPIOA, BOARD_PGA_SCK_PIN, GPIO_MODE_AF, BOARD_PGA_SPI_AF);
    gpio_configure(GPIOA, BOARD_PGA_MOSI_PIN, GPIO_MODE_AF, BOARD_PGA_SPI_AF);
    /* Mode 0,0, 8-bit, 84 MHz / 16 = 5.25 MHz (MCP6S21 max 10 MHz), software NSS. */
    SPI1->CR1 = SPI_CR1_MSTR | SPI_CR1_BR_DIV16 | SPI_CR1_SSM | SPI_CR1_SSI;
    SPI1->CR1 |= SPI_CR1_SPE;
}

bool stm32_pga_command(uint8_t gain, uint8_t out[2])
{
    for (uint8_t code = 0; code < sizeof gains; code++) {
        if (gains[code] == gain) {
            out[0] = MCP6S2X_WRITE_GAIN;
            out[1] = code;
            return true;
        }
    }
    return false;
}

static bool wait_spi(uint32_t mask, uint32_t value)
{
    for (uint32_t i = 0; i < STM32_POLL_LIMIT; i++) {
        if ((SPI1->SR & mask) == value) {
            return true;
        }
    }
    return false;
}

bool stm32_pga_set_gain(uint8_t gain)
{
    uint8_t cmd[2];
    if (!stm32_pga_command(gain, cmd)) {
        return false;
    }
    GPIOC->BSRR = 1u << (BOARD_PGA_CS_PIN + 16u); /* CS low */
    bool ok = true;
    for (int i = 0; i < 2 && ok; i++) {
        ok = wait_spi(SPI_SR_TXE, SPI_SR_TXE);
        if (ok) {
            SPI1->DR = cmd[i];
        }
    }
    ok = ok && wait_spi(SPI_SR_TXE, SPI_SR_TXE) && wait_spi(SPI_SR_BSY, 0);
    GPIOC->BSRR = 1u << BOARD_PGA_CS_PIN; /* CS high latches the new gain */
    return ok;
}
