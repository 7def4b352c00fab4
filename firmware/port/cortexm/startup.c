/* Cortex-M4 reset and vector table for the STM32F405 (board and QEMU netduinoplus2). */
#include <stdint.h>
#include <string.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _estack;
int main(void);
void Reset_Handler(void);
void Default_Handler(void);

void Default_Handler(void)
{
    for (;;) {
    }
}

#define WEAK_HANDLER(name) void name(void) __attribute__((weak, alias("Default_Handler")))
WEAK_HANDLER(NMI_Handler);
WEAK_HANDLER(HardFault_Handler);
WEAK_HANDLER(MemManage_Handler);
WEAK_HANDLER(BusFault_Handler);
WEAK_HANDLER(UsageFault_Handler);
WEAK_HANDLER(SVC_Handler);
WEAK_HANDLER(PendSV_Handler);
WEAK_HANDLER(SysTick_Handler);
WEAK_HANDLER(TIM2_IRQHandler);
WEAK_HANDLER(USART2_IRQHandler);
WEAK_HANDLER(USART3_IRQHandler);
WEAK_HANDLER(DMA2_Stream0_IRQHandler);
WEAK_HANDLER(USART6_IRQHandler);

#define N_IRQ 82
#define IRQ_TIM2 28
#define IRQ_USART2 38
#define IRQ_USART3 39
#define IRQ_DMA2_STREAM0 56
#define IRQ_USART6 71

typedef void (*vector_t)(void);

__attribute__((section(".isr_vector"), used)) static const vector_t vectors[16 + N_IRQ] = {
    [0] = (vector_t)&_estack,
    [1] = Reset_Handler,
    [2] = NMI_Handler,
    [3] = HardFault_Handler,
    [4] = MemManage_Handler,
    [5] = BusFault_Handler,
    [6] = UsageFault_Handler,
    [11] = SVC_Handler,
    [14] = PendSV_Handler,
    [15] = SysTick_Handler,
    [16 + IRQ_TIM2] = TIM2_IRQHandler,
    [16 + IRQ_USART2] = USART2_IRQHandler,
    [16 + IRQ_USART3] = USART3_IRQHandler,
    [16 + IRQ_DMA2_STREAM0] = DMA2_Stream0_IRQHandler,
    [16 + IRQ_USART6] = USART6_IRQHandler,
};

void Reset_Handler(void)
{
    size_t data_len = (size_t)((uintptr_t)&_edata - (uintptr_t)&_sdata);
    size_t bss_len = (size_t)((uintptr_t)&_ebss - (uintptr_t)&_sbss);
    memcpy(&_sdata, &_sidata, data_len);
    memset(&_sbss, 0, bss_len);
    (void)main();
    for (;;) {
    }
}
