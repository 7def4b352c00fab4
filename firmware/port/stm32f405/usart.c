#include "board.h"
#include "drivers.h"
#include "stm32f405_regs.h"

#define RX_RING 256u
static volatile uint8_t rx_ring[RX_RING];
static volatile uint32_t rx_head, rx_tail;

static void pin_af7(uint32_t pin)
{
    GPIOA->MODER = (GPIOA->MODER & ~(3u << (2u * pin))) | (2u << (2u * pin));
    GPIOA->AFR[pin / 8u] = (GPIOA->AFR[pin / 8u] & ~(0xFu << (4u * (pin % 8u)))) |
                           (7u << (4u * (pin % 8u)));
}

uint32_t stm32_usart2_init(uint32_t baud, bool flow_control)
{
    RCC->AHB1ENR |= RCC_AHB1ENR_GPIOA;
    RCC->APB1ENR |= RCC_APB1ENR_USART2;
    pin_af7(BOARD_UART_TX_PIN);
    pin_af7(BOARD_UART_RX_PIN);
    if (flow_control) {
        pin_af7(BOARD_UART_CTS_PIN);
        pin_af7(BOARD_UART_RTS_PIN);
    }
    rx_head = rx_tail = 0;
    /* Oversampling 16: BRR = fPCLK / baud, rounded (921600: 45.57 -> 46, -0.93 %). */
    uint32_t brr = (BOARD_APB1_HZ + baud / 2u) / baud;
    USART2->CR1 = 0;
    USART2->BRR = brr;
    USART2->CR2 = 0;
    USART2->CR3 = flow_control ? (USART_CR3_RTSE | USART_CR3_CTSE) : 0u;
    USART2->CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE | USART_CR1_RXNEIE;
    nvic_enable(IRQN_USART2, 2);
    return brr;
}

bool stm32_usart2_try_write(uint8_t byte)
{
    if (!(USART2->SR & USART_SR_TXE)) {
        return false;
    }
    USART2->DR = byte;
    return true;
}

void stm32_usart2_irq(void)
{
    uint32_t sr = USART2->SR;
    if (sr & (USART_SR_RXNE | USART_SR_ORE)) {
        uint8_t byte = (uint8_t)USART2->DR; /* reading SR then DR also clears ORE */
        if (rx_head - rx_tail < RX_RING) {
            rx_ring[rx_head % RX_RING] = byte;
            rx_head++;
        }
    }
}

size_t stm32_usart2_read(uint8_t *buf, size_t cap)
{
    size_t n = 0;
    while (n < cap && rx_tail != rx_head) {
        buf[n++] = rx_ring[rx_tail % RX_RING];
        rx_tail++;
    }
    return n;
}
