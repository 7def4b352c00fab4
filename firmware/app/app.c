#include "app.h"

#include "command.h"
#include "framer.h"
#include "port.h"
#include "proto.h"
#include "transport.h"
#include "version.h"

#define STATUS_PERIOD_SAMPLES SAMPLE_RATE_HZ /* one STATUS per second of samples */
#define PACING_BURST_BYTES (PROTO_OVERHEAD + PROTO_ADPCM_HEADER_SIZE + ADPCM_FRAME_SAMPLES / 2)
#define RX_CHUNK 64u

static app_config_t config;
static sampler_t sampler;
static framer_t framer;
static transport_t tx;
static proto_parser_t rx;
static device_settings_t settings;
static app_counters_t counters;

static bool start_flag_pending;
static uint32_t stream_from;
static int16_t held[ADPCM_FRAME_SAMPLES]; /* ADPCM frames span two sampler blocks */
static size_t held_count;
static uint32_t held_start;
static uint8_t held_flags;

static uint8_t frame_buf[PROTO_MAX_FRAME];
static sampler_block_t block;
static int16_t pcm[SAMPLER_BLOCK];

sampler_t *app_sampler(void) { return &sampler; }

static void send(uint8_t type, uint8_t flags, uint32_t index, const uint8_t *p, size_t len)
{
    size_t n = framer_frame(&framer, type, flags, index, p, len, frame_buf, sizeof frame_buf);
    (void)transport_send(&tx, frame_buf, n);
}

static void send_device_info(uint32_t index)
{
    proto_device_info_t info = {
        .device_id = port_device_id(),
        .fw_major = FW_VERSION_MAJOR,
        .fw_minor = FW_VERSION_MINOR,
        .fw_patch = FW_VERSION_PATCH,
        .sensor_type = PROTO_SENSOR_PIEZO,
        .sample_rate_hz = SAMPLE_RATE_HZ,
        .bit_depth = 12,
        .gain = settings.gain,
        .codec = settings.codec,
        .link = config.link,
        .frame_samples =
            (uint16_t)(settings.codec == PROTO_CODEC_PCM16 ? PCM_FRAME_SAMPLES
                                                           : ADPCM_FRAME_SAMPLES),
    };
    uint8_t payload[PROTO_DEVICE_INFO_SIZE];
    proto_pack_device_info(&info, payload);
    send(PROTO_DEVICE_INFO, 0, index, payload, sizeof payload);
}

static void send_status(uint32_t index, uint32_t time_us)
{
    proto_status_t st = {
        .battery_mv = 0, /* USB powered through the isolator: no battery to measure */
        .battery_pct = PROTO_BATTERY_UNKNOWN,
        .state_flags = settings.streaming ? PROTO_STATUS_STREAMING : 0u,
        .clip_count = counters.clip_count,
        .adc_overruns = sampler_overruns(&sampler),
        .tx_drops = transport_drops(&tx),
        .uptime_us = time_us,
    };
    uint8_t payload[PROTO_STATUS_SIZE];
    proto_pack_status(&st, payload);
    send(PROTO_STATUS, 0, index, payload, sizeof payload);
}

static void flush_held(void)
{
    if (held_count == 0) {
        return;
    }
    size_t n = framer_adpcm(&framer, held, held_count, held_start, held_flags, frame_buf,
                            sizeof frame_buf);
    (void)transport_send(&tx, frame_buf, n);
    held_count = 0;
    held_flags = 0;
}

static void stream_adpcm(const sampler_block_t *b, uint8_t flags)
{
    if (held_count > 0 && held_start + held_count != b->start_index) {
        flush_held(); /* a lost block: never encode across a hole */
    }
    if (held_count == 0) {
        held_start = b->start_index;
    }
    for (size_t i = 0; i < SAMPLER_BLOCK; i++) {
        held[held_count + i] = pcm[i];
    }
    held_count += SAMPLER_BLOCK;
    held_flags |= flags;
    if (held_count == ADPCM_FRAME_SAMPLES) {
        flush_held();
    }
}

static void handle_block(const sampler_block_t *b)
{
    uint32_t clipped = framer_convert(b->codes, SAMPLER_BLOCK, pcm);
    counters.clip_count += clipped;
    if (settings.streaming && (int32_t)(b->start_index - stream_from) >= 0) {
        uint8_t flags = (uint8_t)((start_flag_pending ? PROTO_FLAG_STREAM_START : 0u) |
                                  (clipped ? PROTO_FLAG_CLIPPED : 0u));
        start_flag_pending = false;
        if (settings.codec == PROTO_CODEC_PCM16) {
            size_t n = framer_pcm(&framer, pcm, SAMPLER_BLOCK, b->start_index, flags,
                                  frame_buf, sizeof frame_buf);
            (void)transport_send(&tx, frame_buf, n);
        } else {
            stream_adpcm(b, flags);
        }
    }
    uint32_t end = b->start_index + SAMPLER_BLOCK;
    if (end % STATUS_PERIOD_SAMPLES == 0u) {
        send_status(end, b->time_us);
    }
}

static uint32_t current_block_start(void)
{
    uint32_t irq = port_irq_save();
    uint32_t start = sampler_active_start(&sampler);
    port_irq_restore(irq);
    return start;
}

static void handle_command(const proto_header_t *h, const uint8_t *payload)
{
    command_outcome_t out = command_execute(&settings, h->seq, payload, h->length);
    uint32_t index = port_sample_index_now();
    if (out.apply_gain) {
        index = port_set_gain(settings.gain);
    }
    if (out.stream_stopped || out.stream_started) {
        flush_held(); /* nothing of the old stream may follow the ACK */
    }
    if (out.stream_started) {
        stream_from = current_block_start();
        start_flag_pending = true;
    }
    uint8_t ack[PROTO_ACK_SIZE];
    proto_pack_ack(&out.ack, ack);
    send(PROTO_ACK, 0, index, ack, sizeof ack);
    if (out.send_info) {
        send_device_info(index);
    }
}

static void receive(void)
{
    uint8_t chunk[RX_CHUNK];
    size_t n = port_uart_read(chunk, sizeof chunk);
    size_t taken = 0;
    proto_event_t ev;
    do {
        taken += proto_parser_write(&rx, chunk + taken, n - taken);
        while (proto_parser_next(&rx, &ev)) {
            if (ev.kind == PROTO_EV_FRAME && ev.header.type == PROTO_COMMAND) {
                handle_command(&ev.header, ev.payload);
            } else if (ev.kind == PROTO_EV_CRC_ERROR) {
                counters.rx_crc_errors++;
            } else if (ev.kind == PROTO_EV_SKIPPED) {
                counters.rx_skipped_bytes += (uint32_t)ev.consumed;
            }
        }
    } while (taken < n);
}

void app_init(const app_config_t *cfg)
{
    config = *cfg;
    sampler_init(&sampler);
    framer_init(&framer);
    transport_init(&tx, cfg->pace_bytes_per_s, PACING_BURST_BYTES, port_time_us());
    proto_parser_init(&rx);
    settings.streaming = true;
    settings.codec = cfg->codec;
    settings.gain = command_gain_valid(cfg->gain) ? cfg->gain : 1u;
    counters = (app_counters_t){0};
    held_count = 0;
    held_flags = 0;
    stream_from = 0;
    start_flag_pending = true;
    (void)port_set_gain(settings.gain);
    send_device_info(0);
}

bool app_poll(void)
{
    receive();
    while (sampler_take(&sampler, &block)) {
        handle_block(&block);
    }
    (void)transport_pump(&tx, port_time_us(), port_uart_try_write);
    return transport_queued(&tx) > 0;
}

app_counters_t app_counters(void)
{
    app_counters_t c = counters;
    c.adc_overruns = sampler_overruns(&sampler);
    c.tx_drops = transport_drops(&tx);
    return c;
}
