/* Adafruit Feather STM32F405 Express: clocks and pin use of this firmware.
 * Pins follow docs/ and interfaces.md (USART2, SPI1, ADC1); see firmware/README.md. */
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

#define BOARD_ADC_CHANNEL 14u /* PC4 = Feather A4: piezo front-end output, biased at 1.65 V */
#define BOARD_ADC_PIN 4u      /* on GPIOC */
#define BOARD_UART_TX_PIN 2u  /* PA2 USART2_TX (AF7) */
#define BOARD_UART_RX_PIN 3u  /* PA3 USART2_RX (AF7) */
#define BOARD_UART_CTS_PIN 0u /* PA0 USART2_CTS (AF7), BLE build only */
#define BOARD_UART_RTS_PIN 1u /* PA1 USART2_RTS (AF7), BLE build only */
#define BOARD_PGA_CS_PIN 4u   /* PA4: MCP6S21 chip select (GPIO, active low) */
#define BOARD_PGA_SCK_PIN 5u  /* PA5 SPI1_SCK (AF5) */
#define BOARD_PGA_MOSI_PIN 7u /* PA7 SPI1_MOSI (AF5); the MCP6S21 has no data output */

#define BOARD_UART_BAUD_WIRED 921600u /* FT232R through the USB isolator */
#define BOARD_UART_BAUD_BLE 460800u   /* MDBT42Q running ble_app_uart, RTS/CTS */
#define BOARD_BLE_PACE_BYTES_PER_S 6000u /* below the 8133 B/s NUS budget, above ADPCM's 4588 */

#endif
