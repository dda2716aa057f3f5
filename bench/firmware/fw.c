/* A small Cortex-M4 firmware for the delta benchmark: startup code and vector table, a UART
 * command shell over a ring buffer, CRC-32, a PID loop in floating point (soft-float), a task
 * table of function pointers and telemetry formatted with newlib's printf family.
 * FW_VERSION=2 inserts a filter function near the start of the program, so the code after it
 * moves: every call, branch and pointer across it changes in the binary. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#ifndef FW_VERSION
#define FW_VERSION 1
#endif

extern uint32_t _estack, _sidata, _sdata, _edata, _sbss, _ebss;
extern void __libc_init_array(void);
int main(void);

void _init(void) {}
void _fini(void) {}

void Reset_Handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;) *dst++ = 0;
    __libc_init_array();
    main();
    for (;;) {}
}

void Default_Handler(void) { for (;;) {} }
void NMI_Handler(void) __attribute__((weak, alias("Default_Handler")));
void HardFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void MemManage_Handler(void) __attribute__((weak, alias("Default_Handler")));
void BusFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void UsageFault_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SVC_Handler(void) __attribute__((weak, alias("Default_Handler")));
void PendSV_Handler(void) __attribute__((weak, alias("Default_Handler")));
void SysTick_Handler(void);
void USART2_IRQHandler(void);
void TIM2_IRQHandler(void);

__attribute__((section(".isr_vector"), used))
void (*const vectors[])(void) = {
    (void (*)(void))&_estack, Reset_Handler, NMI_Handler, HardFault_Handler,
    MemManage_Handler, BusFault_Handler, UsageFault_Handler, 0, 0, 0, 0,
    SVC_Handler, 0, 0, PendSV_Handler, SysTick_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, TIM2_IRQHandler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, Default_Handler, Default_Handler, Default_Handler,
    Default_Handler, Default_Handler, USART2_IRQHandler, Default_Handler,
};

#define USART2_DR (*(volatile uint32_t *)0x40004404u)
#define USART2_SR (*(volatile uint32_t *)0x40004400u)
#define TIM2_SR (*(volatile uint32_t *)0x40000010u)

#if FW_VERSION >= 2
/* Version 2: an exponential moving average smooths the sensor readings. */
static float ema_state[8];
__attribute__((noinline)) float smooth(int channel, float x)
{
    float a = 0.125f + 0.015625f * (float)(channel & 3);
    ema_state[channel & 7] += a * (x - ema_state[channel & 7]);
    if (fabsf(ema_state[channel & 7]) > 1.0e6f) ema_state[channel & 7] = 0.0f;
    return ema_state[channel & 7];
}
#else
#define smooth(channel, x) (x)
#endif

static volatile uint32_t ticks;
static char rx_ring[256];
static volatile uint8_t rx_head, rx_tail;
static char line[128];
static unsigned line_len;
static uint32_t crc_table[256];

void SysTick_Handler(void) { ticks++; }

void USART2_IRQHandler(void)
{
    if (USART2_SR & 0x20u) {
        rx_ring[rx_head++] = (char)USART2_DR;
    }
}

static void uart_putc(char c)
{
    while (!(USART2_SR & 0x80u)) {}
    USART2_DR = (uint8_t)c;
}

int _write(int fd, const char *buf, int len)
{
    (void)fd;
    for (int i = 0; i < len; i++) uart_putc(buf[i]);
    return len;
}

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

static uint32_t crc32(const void *data, size_t n)
{
    const uint8_t *p = data;
    uint32_t c = 0xffffffffu;
    while (n--) c = crc_table[(c ^ *p++) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

struct pid {
    float kp, ki, kd, integral, prev, out_min, out_max;
};

static float pid_step(struct pid *p, float setpoint, float measured, float dt)
{
    float err = setpoint - measured;
    p->integral += err * dt;
    float deriv = (err - p->prev) / dt;
    p->prev = err;
    float out = p->kp * err + p->ki * p->integral + p->kd * deriv;
    if (out > p->out_max) out = p->out_max;
    if (out < p->out_min) out = p->out_min;
    return out;
}

static struct pid heater = {2.5f, 0.1f, 0.8f, 0, 0, 0.0f, 100.0f};
static struct pid fan = {1.2f, 0.05f, 0.3f, 0, 0, 0.0f, 255.0f};
static float temperature[4] = {21.0f, 21.5f, 20.8f, 22.1f};
static float setpoint = 45.0f;
static int verbose = 1;

static float read_sensor(int channel)
{
    /* A simulated thermistor: Steinhart-Hart on a synthetic ADC reading. */
    float adc = 2048.0f + 300.0f * sinf((float)ticks * 0.01f + (float)channel);
    float r = 10000.0f * adc / (4095.0f - adc);
    float ln = logf(r / 10000.0f);
    float t = 1.0f / (1.0f / 298.15f + ln / 3950.0f) - 273.15f;
    return smooth(channel, t);
}

static void task_sample(void)
{
    for (int c = 0; c < 4; c++) temperature[c] = read_sensor(c);
}

static void task_control(void)
{
    float avg = (temperature[0] + temperature[1] + temperature[2] + temperature[3]) / 4.0f;
    float h = pid_step(&heater, setpoint, avg, 0.1f);
    float f = pid_step(&fan, avg, setpoint, 0.1f);
    if (verbose > 1) printf("ctl avg=%.2f heater=%.1f fan=%.1f\r\n", (double)avg, (double)h, (double)f);
}

static void task_telemetry(void)
{
    char buf[160];
    int n = snprintf(buf, sizeof buf,
                     "{\"t\":%lu,\"temp\":[%.2f,%.2f,%.2f,%.2f],\"set\":%.1f,\"v\":%d}",
                     (unsigned long)ticks, (double)temperature[0], (double)temperature[1],
                     (double)temperature[2], (double)temperature[3], (double)setpoint, FW_VERSION);
    uint32_t crc = crc32(buf, (size_t)n);
    if (verbose) printf("%s*%08lx\r\n", buf, (unsigned long)crc);
}

static void task_watchdog(void)
{
    static uint32_t last;
    if (ticks - last > 5000u) {
        printf("watchdog: no progress since %lu\r\n", (unsigned long)last);
    }
    last = ticks;
}

struct task {
    const char *name;
    void (*run)(void);
    uint32_t period, next;
};

static struct task tasks[] = {
    {"sample", task_sample, 10, 0},
    {"control", task_control, 100, 0},
    {"telemetry", task_telemetry, 1000, 0},
    {"watchdog", task_watchdog, 2000, 0},
};

static void cmd_help(int argc, char **argv);
static void cmd_set(int argc, char **argv)
{
    if (argc < 2) {
        printf("usage: set <celsius>\r\n");
        return;
    }
    float v = strtof(argv[1], NULL);
    if (v < 5.0f || v > 90.0f) {
        printf("set: %s out of range 5..90\r\n", argv[1]);
        return;
    }
    setpoint = v;
    printf("setpoint %.1f\r\n", (double)setpoint);
}
static void cmd_verbose(int argc, char **argv) { verbose = argc > 1 ? atoi(argv[1]) : !verbose; }
static void cmd_tasks(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    for (unsigned i = 0; i < sizeof tasks / sizeof tasks[0]; i++)
        printf("%-10s every %4lu ms, next at %lu\r\n", tasks[i].name,
               (unsigned long)tasks[i].period, (unsigned long)tasks[i].next);
}
static void cmd_crc(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) printf("%s %08lx\r\n", argv[i], (unsigned long)crc32(argv[i], strlen(argv[i])));
}
static void cmd_stats(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    float mean = 0, var = 0;
    for (int c = 0; c < 4; c++) mean += temperature[c];
    mean /= 4.0f;
    for (int c = 0; c < 4; c++) var += (temperature[c] - mean) * (temperature[c] - mean);
    printf("mean %.3f stddev %.3f integral %.3f/%.3f\r\n", (double)mean, (double)sqrtf(var / 4.0f),
           (double)heater.integral, (double)fan.integral);
}

struct command {
    const char *name;
    void (*run)(int argc, char **argv);
    const char *help;
};

static const struct command commands[] = {
    {"help", cmd_help, "list commands"},
    {"set", cmd_set, "set the temperature setpoint"},
    {"verbose", cmd_verbose, "toggle or set telemetry verbosity"},
    {"tasks", cmd_tasks, "show the task table"},
    {"crc", cmd_crc, "CRC-32 of each argument"},
    {"stats", cmd_stats, "sensor statistics"},
};

static void cmd_help(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    for (unsigned i = 0; i < sizeof commands / sizeof commands[0]; i++)
        printf("  %-8s %s\r\n", commands[i].name, commands[i].help);
}

static void run_line(char *s)
{
    char *argv[8];
    int argc = 0;
    for (char *tok = strtok(s, " \t"); tok && argc < 8; tok = strtok(NULL, " \t")) argv[argc++] = tok;
    if (argc == 0) return;
    for (unsigned i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(argv[0], commands[i].name) == 0) {
            commands[i].run(argc, argv);
            return;
        }
    }
    printf("unknown command '%s' (try help)\r\n", argv[0]);
}

static void poll_uart(void)
{
    while (rx_tail != rx_head) {
        char c = rx_ring[rx_tail++];
        if (c == '\r' || c == '\n') {
            line[line_len] = 0;
            run_line(line);
            line_len = 0;
        } else if (line_len + 1 < sizeof line) {
            line[line_len++] = c;
        }
    }
}

void TIM2_IRQHandler(void) { TIM2_SR = 0; }

int main(void)
{
    crc_init();
    printf("thermo controller v%d ready\r\n", FW_VERSION);
    for (;;) {
        poll_uart();
        for (unsigned i = 0; i < sizeof tasks / sizeof tasks[0]; i++) {
            if ((int32_t)(ticks - tasks[i].next) >= 0) {
                tasks[i].next = ticks + tasks[i].period;
                tasks[i].run();
            }
        }
        __asm volatile("wfi");
    }
}
