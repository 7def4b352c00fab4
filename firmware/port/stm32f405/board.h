/* Adafruit Feather STM32F405 Express: clocks and pin use of this firmware.
 * Pins follow hardware/wiring.md; see firmware/README.md. */
#ifndef BOARD_H
#define BOARD_H

#define BOARD_HSE_HZ 12000000u /* crystal on the Feather */
#define BOARD_SYSCLK_HZ 168000000u
#define BOARD_APB1_HZ 42000000u       /* HCLK / 4 */
#define BOARD_APB2_HZ 84000000u       /* HCLK / 2 */
#define BOARD_APB1_TIMER_HZ 84000000u /* APB1 prescaler != 1: timers run at 2 x PCLK1 */

/* PLL: 12 MHz / M 6 = 2 MHz VCO input, x N 168 = 336 MHz, / P 2 = 168 MHz, / Q 7 = 48 MHz */
#define BOARD_PLL_M 6u
#define BOARD_PLL_N 168u
#define BOARD_PLL_P_DIV2 0u
#define BOARD_PLL_Q 7u

/* Pins are those of hardware/wiring.md. The Feather does not break out PA0-PA2 and uses PA3
 * for its battery monitor, so USART2 (interfaces.md, and the QEMU port) cannot be wired:
 * the wired link is USART6 on D6/D5, the BLE module USART3 on TX/RX with RTS/CTS. */
#define BOARD_ADC_CHANNEL 4u /* ADC1_IN4 = PA4 = Feather A0: front-end output, 1.65 V bias */
#define BOARD_ADC_PIN 4u     /* on GPIOA */

/* Wired link: USART6 (APB2) to the FT232R on J2, no flow control (J2 CTS/RTS unused). */
#define BOARD_WIRED_TX_PIN 6u /* PC6 = D6, USART6_TX */
#define BOARD_WIRED_RX_PIN 7u /* PC7 = D5, USART6_RX */
#define BOARD_WIRED_AF 8u

/* BLE link: USART3 (APB1) to the MDBT42Q, hardware flow control. */
#define BOARD_BLE_TX_PIN 10u  /* PB10 = TX, USART3_TX -> module RXD */
#define BOARD_BLE_RX_PIN 11u  /* PB11 = RX, USART3_RX <- module TXD */
#define BOARD_BLE_CTS_PIN 13u /* PB13 = SCK, USART3_CTS <- module RTS */
#define BOARD_BLE_RTS_PIN 14u /* PB14 = MISO, USART3_RTS -> module CTS */
#define BOARD_BLE_AF 7u

/* MCP6S21 PGA on SPI1 (AF5). SPI1 is shared with the on-board SPI flash (PB3-PB5, left
 * unconfigured): its CS must stay high or the flash would drive the bus. */
#define BOARD_PGA_SCK_PIN 5u  /* PA5 = A1, SPI1_SCK */
#define BOARD_PGA_MOSI_PIN 7u /* PA7 = A3, SPI1_MOSI; the MCP6S21 has no data output */
#define BOARD_PGA_SPI_AF 5u
#define BOARD_PGA_CS_PIN 2u    /* PC2 = D12: MCP6S21 chip select (GPIO, active low) */
#define BOARD_FLASH_CS_PIN 15u /* PA15: on-board SPI flash chip select, held high */

#define BOARD_UART_BAUD_WIRED 921600u /* FT232R through the USB isolator */
#define BOARD_UART_BAUD_BLE 460800u   /* MDBT42Q running ble_app_uart, RTS/CTS */
#define BOARD_BLE_PACE_BYTES_PER_S 6000u /* below the 8133 B/s NUS budget, above ADPCM's 4588 */

#endif
