/* The serial link of hardware/wiring.md: USART6 to the FT232R (wired build) or USART3 with
 * RTS/CTS to the MDBT42Q (BLE build). One link is active per image. */
#include "board.h"
#include "drivers.h"
#include "stm32f405_regs.h"

#define RX_RING 256u
static volatile uint8_t rx_ring[RX_RING];
static volatile uint32_t rx_head, rx_tail;
static usart_t *link_usart;

static uint32_t brr_for(uint32_t pclk_hz, uint32_t baud)
{
    return (pclk_hz + baud / 2u) / baud; /* oversampling 16: fPCLK / baud, rounded */
}

static void wired_pins_and_clock(void)
{
    RCC->AHB1ENR |= RCC_AHB1ENR_GPIOC;
    RCC->APB2ENR |= RCC_APB2ENR_USART6;
    gpio_configure(GPIOC, BOARD_WIRED_TX_PIN, GPIO_MODE_AF, BOARD_WIRED_AF);
    gpio_configure(GPIOC, BOARD_WIRED_RX_PIN, GPIO_MODE_AF, BOARD_WIRED_AF);
}

static void ble_pins_and_clock(void)
{
    RCC->AHB1ENR |= RCC_AHB1ENR_GPIOB;
    RCC->APB1ENR |= RCC_APB1ENR_USART3;
    gpio_configure(GPIOB, BOARD_BLE_TX_PIN, GPIO_MODE_AF, BOARD_BLE_AF);
    gpio_configure(GPIOB, BOARD_BLE_RX_PIN, GPIO_MODE_AF, BOARD_BLE_AF);
    gpio_configure(GPIOB, BOARD_BLE_CTS_PIN, GPIO_MODE_AF, BOARD_BLE_AF);
    gpio_configure(GPIOB, BOARD_BLE_RTS_PIN, GPIO_MODE_AF, BOARD_BLE_AF);
}

uint32_t stm32_usart_init(stm32_link_t link, uint32_t baud)
{
    bool ble = link == STM32_LINK_BLE;
    uint32_t irqn;
    uint32_t brr;
    if (ble) {
        ble_pins_and_clock();
        link_usart = USART3;
        irqn = IRQN_USART3;
        brr = brr_for(BOARD_APB1_HZ, baud); /* USART3 is on APB1 */
    } else {
        wired_pins_and_clock();
        link_usart = USART6;
        irqn = IRQN_USART6;
        brr = brr_for(BOARD_APB2_HZ, baud); /* USART6 is on APB2 */
    }
    rx_head = rx_tail = 0;
    link_usart->CR1 = 0;
    link_usart->BRR = brr;
    link_usart->CR2 = 0;
    /* The module holds CTS high while its buffer is full, so bursts never overrun it. */
    link_usart->CR3 = ble ? (USART_CR3_RTSE | USART_CR3_CTSE) : 0u;
    link_usart->CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
    nvic_enable(irqn, 2);
    return brr;
}

bool stm32_usart_try_write(uint8_t byte)
{
    if (!(link_usart->SR & USART_SR_TXE)) {
        return false;
    }
    link_usart->DR = byte;
    return true;
}

void stm32_usart_irq(void)
{
    uint32_t sr = link_usart->SR;
    if (sr & (USART_SR_RXNE | USART_SR_ORE)) {
        uint8_t byte = (uint8_t)link_usart->DR; /* reading SR then DR also clears ORE */
        if (rx_head - rx_tail < RX_RING) {
            rx_ring[rx_head % RX_RING] = byte;
            rx_head++;
        }
    }
}

size_t stm32_usart_read(uint8_t *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap && rx_tail != rx_head) {
        buf[n++] = rx_ring[rx_tail % RX_RING];
        rx_tail++;
    }
    return n;
}
