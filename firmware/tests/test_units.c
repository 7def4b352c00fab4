/* Unit tests of the shared application code on the host port. */
#include <string.h>

#include "adpcm.h"
#include "app.h"
#include "check.h"
#include "command.h"
#include "framer.h"
#include "port_host.h"
#include "proto.h"
#include "sampler.h"
#include "transport.h"

static size_t make_pcm_frame(uint16_t seq, uint32_t index, uint8_t *out)
{
    int16_t pcm[40];
    for (int i = 0; i < 40; i++) {
        pcm[i] = (int16_t)(i * 997 + seq);
    }
    framer_t f = {.seq = seq};
    return framer_pcm(&f, pcm, 40, index, 0, out, PROTO_MAX_FRAME);
}

typedef struct {
    size_t frames, crc_errors, version_errors, skipped, accounted;
    uint16_t seqs[64];
} tally_t;

static void feed(proto_parser_t *p, const uint8_t *data, size_t len, size_t chunk, tally_t *t)
{
    for (size_t off = 0; off < len;) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t taken = proto_parser_write(p, data + off, n);
        off += taken;
        proto_event_t ev;
        while (proto_parser_next(p, &ev)) {
            t->accounted += ev.consumed;
            if (ev.kind == PROTO_EV_FRAME) {
                if (t->frames < 64) {
                    t->seqs[t->frames] = ev.header.seq;
                }
                t->frames++;
            }
            t->crc_errors += ev.kind == PROTO_EV_CRC_ERROR;
            t->version_errors += ev.kind == PROTO_EV_VERSION_ERROR;
            t->skipped += ev.kind == PROTO_EV_SKIPPED ? ev.consumed : 0;
        }
    }
}

void test_parser_chunking_and_noise(void)
{
    static uint8_t wire[4096];
    size_t len = 0;
    const uint8_t noise[] = {0x00, 0xA5, 0x11, 0xA5, 0xA5, 0x5A, 0x01};
    memcpy(wire, noise, sizeof noise);
    len += sizeof noise;
    for (uint16_t s = 0; s < 5; s++) {
        len += make_pcm_frame(s, 40u * s, wire + len);
    }
    memset(wire + len, 0, PROTO_MAX_FRAME); /* idle line flushes a false sync */
    len += PROTO_MAX_FRAME;
    const size_t chunks[] = {1, 2, 13, 64, 4096};
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
        static proto_parser_t p;
        proto_parser_init(&p);
        tally_t t = {0};
        feed(&p, wire, len, chunks[c], &t);
        CHECK_EQ(t.frames, 5);
        CHECK_EQ(t.accounted + proto_parser_pending(&p), len);
        for (uint16_t s = 0; s < 5; s++) {
            CHECK_EQ(t.seqs[s], s);
        }
    }
}

void test_parser_corrupt_length(void)
{
    static uint8_t wire[4096];
    size_t len = 0;
    for (uint16_t s = 0; s < 4; s++) {
        len += make_pcm_frame(s, 40u * s, wire + len);
    }
    wire[12] = 0xE8; /* first frame now claims 1000 payload bytes */
    wire[13] = 0x03;
    memset(wire + len, 0, PROTO_MAX_FRAME); /* the line keeps going (idle) */
    len += PROTO_MAX_FRAME;
    static proto_parser_t p;
    proto_parser_init(&p);
    tally_t t = {0};
    feed(&p, wire, len, 7, &t);
    CHECK_EQ(t.crc_errors, 1);
    CHECK_EQ(t.frames, 3);
    CHECK_EQ(t.seqs[0], 1);
    CHECK_EQ(t.accounted + proto_parser_pending(&p), len);
}

void test_adpcm_frame_independence(void)
{
    int16_t signal[640];
    for (int i = 0; i < 640; i++) {
        signal[i] = (int16_t)((i * 37) % 4000 - 2000);
    }
    framer_t f;
    framer_init(&f);
    uint8_t a[PROTO_MAX_FRAME], b[PROTO_MAX_FRAME];
    size_t na = framer_adpcm(&f, signal, 320, 0, 0, a, sizeof a);
    size_t nb = framer_adpcm(&f, signal + 320, 320, 320, 0, b, sizeof b);
    CHECK(na == PROTO_OVERHEAD + 4 + 160 && nb == na);
    /* Decode frame b alone (frame a "lost") and compare with a continuous decode. */
    int16_t alone[320], cont[640];
    int16_t pred;
    uint8_t idx;
    CHECK(proto_unpack_adpcm_header(b + PROTO_HEADER_SIZE, nb - PROTO_OVERHEAD, &pred, &idx));
    adpcm_state_t st = {pred, idx};
    adpcm_decode(&st, b + PROTO_HEADER_SIZE + 4, 160, alone);
    adpcm_state_t whole = {0, 0};
    adpcm_decode(&whole, a + PROTO_HEADER_SIZE + 4, 160, cont);
    adpcm_decode(&whole, b + PROTO_HEADER_SIZE + 4, 160, cont + 320);
    CHECK(memcmp(alone, cont + 320, sizeof alone) == 0);
    CHECK_EQ(f.seq, 2);
}

void test_sampler_double_buffer(void)
{
    host_port_reset();
    sampler_t s;
    sampler_init(&s);
    sampler_block_t b;
    CHECK(!sampler_take(&s, &b));
    for (uint32_t i = 0; i < 2 * SAMPLER_BLOCK + 5; i++) {
        sampler_push(&s, (uint16_t)(i & 0xFFFu), 1000u + i);
        if (i == SAMPLER_BLOCK - 1) {
            CHECK(sampler_take(&s, &b));
            CHECK_EQ(b.start_index, 0);
            CHECK_EQ(b.codes[0], 0);
            CHECK_EQ(b.codes[SAMPLER_BLOCK - 1], SAMPLER_BLOCK - 1);
            CHECK_EQ(b.time_us, 1000u + SAMPLER_BLOCK - 1);
        }
    }
    CHECK(sampler_take(&s, &b));
    CHECK_EQ(b.start_index, SAMPLER_BLOCK);
    CHECK_EQ(b.codes[0], SAMPLER_BLOCK);
    CHECK(!sampler_take(&s, &b));
    CHECK_EQ(sampler_index_at(&s, s.fill), 2 * SAMPLER_BLOCK + 5);
    CHECK_EQ(sampler_overruns(&s), 0);
}

void test_sampler_overrun(void)
{
    sampler_t s;
    sampler_init(&s);
    for (uint32_t i = 0; i < 3 * SAMPLER_BLOCK; i++) {
        sampler_push(&s, 7, 0);
    }
    /* Nothing taken: block 0 is lost when block 1 completes (its half is refilled next),
     * block 1 when block 2 completes; only the newest block survives. */
    CHECK_EQ(sampler_overruns(&s), 2);
    sampler_block_t b;
    CHECK(sampler_take(&s, &b));
    CHECK_EQ(b.start_index, 2 * SAMPLER_BLOCK);
    CHECK(!sampler_take(&s, &b));
    /* DMA-style completion of both halves. */
    sampler_init(&s);
    sampler_half_done(&s, 0, 5);
    CHECK(sampler_take(&s, &b));
    CHECK_EQ(b.start_index, 0);
    sampler_half_done(&s, 1, 6);
    sampler_half_done(&s, 0, 7);
    CHECK_EQ(sampler_overruns(&s), 1);
    CHECK(sampler_take(&s, &b));
    CHECK_EQ(b.start_index, 2 * SAMPLER_BLOCK);
    CHECK_EQ(b.time_us, 7);
}

static size_t written;
static bool count_write(uint8_t byte)
{
    (void)byte;
    written++;
    return true;
}

void test_transport_whole_frames(void)
{
    static transport_t t;
    transport_init(&t, 0, 0, 0);
    static uint8_t frame[1000];
    for (size_t i = 0; i < sizeof frame; i++) {
        frame[i] = (uint8_t)i;
    }
    for (int i = 0; i < 4; i++) {
        CHECK(transport_send(&t, frame, sizeof frame));
    }
    CHECK(!transport_send(&t, frame, sizeof frame)); /* 96 bytes left: whole frame dropped */
    CHECK_EQ(transport_drops(&t), 1);
    CHECK_EQ(transport_queued(&t), 4000);
    CHECK(transport_send(&t, frame, 96));
    written = 0;
    CHECK_EQ(transport_pump(&t, 0, count_write), TXQ_CAPACITY);
    CHECK_EQ(transport_queued(&t), 0);
}

void test_transport_pacing(void)
{
    static transport_t t;
    transport_init(&t, 8000, 200, 1000); /* 8000 B/s, 200-byte burst */
    static uint8_t frame[182];
    for (int i = 0; i < 20; i++) {
        CHECK(transport_send(&t, frame, sizeof frame));
    }
    written = 0;
    CHECK_EQ(transport_pump(&t, 1000, count_write), 200); /* the burst */
    CHECK_EQ(transport_pump(&t, 1000, count_write), 0);
    /* 0.2 s polled every 125 us: exactly rate * time bytes leave, none early. */
    size_t total = 0;
    for (uint32_t us = 1125; us <= 201000; us += 125) {
        total += transport_pump(&t, us, count_write);
        CHECK(total <= (us - 1000) * 8u / 1000u);
    }
    CHECK_EQ(total, 1600);
    CHECK_EQ(transport_queued(&t), 20 * 182 - 200 - 1600);
    transport_init(&t, 4000, 100, 0xFFFFFF00u); /* the microsecond clock wraps */
    CHECK(transport_send(&t, frame, sizeof frame));
    CHECK_EQ(transport_pump(&t, 0xFFFFFF00u, count_write), 100);
    CHECK_EQ(transport_pump(&t, 0x00000F00u, count_write), 16); /* 4096 us at 4000 B/s */
}

void test_command_parser(void)
{
    device_settings_t s = {.streaming = true, .codec = 0, .gain = 1};
    uint8_t p[PROTO_COMMAND_SIZE];
    proto_command_t cmd = {.opcode = PROTO_OP_SET_GAIN, .arg = 8, .cookie = 0x12345678u};
    proto_pack_command(&cmd, p);
    command_outcome_t o = command_execute(&s, 42, p, sizeof p);
    CHECK_EQ(o.ack.result, PROTO_ACK_OK);
    CHECK_EQ(o.ack.command_seq, 42);
    CHECK_EQ(o.ack.cookie, 0x12345678u);
    CHECK(o.apply_gain);
    CHECK_EQ(s.gain, 8);
    cmd.arg = 3;
    proto_pack_command(&cmd, p);
    o = command_execute(&s, 43, p, sizeof p);
    CHECK_EQ(o.ack.result, PROTO_ACK_BAD_ARGUMENT);
    CHECK(!o.apply_gain);
    CHECK_EQ(s.gain, 8);
    cmd = (proto_command_t){.opcode = PROTO_OP_STOP};
    proto_pack_command(&cmd, p);
    o = command_execute(&s, 44, p, sizeof p);
    CHECK(o.stream_stopped && !s.streaming);
    cmd = (proto_command_t){.opcode = PROTO_OP_START, .arg = 7};
    proto_pack_command(&cmd, p);
    o = command_execute(&s, 45, p, sizeof p);
    CHECK_EQ(o.ack.result, PROTO_ACK_BAD_ARGUMENT);
    CHECK(!s.streaming);
    cmd.arg = PROTO_CODEC_ADPCM;
    proto_pack_command(&cmd, p);
    o = command_execute(&s, 46, p, sizeof p);
    CHECK(o.stream_started && o.send_info && s.streaming && s.codec == PROTO_CODEC_ADPCM);
    cmd = (proto_command_t){.opcode = 99, .cookie = 5};
    proto_pack_command(&cmd, p);
    o = command_execute(&s, 47, p, sizeof p);
    CHECK_EQ(o.ack.result, PROTO_ACK_UNKNOWN_OPCODE);
    CHECK_EQ(o.ack.cookie, 5);
    o = command_execute(&s, 48, p, 3);
    CHECK_EQ(o.ack.result, PROTO_ACK_BAD_LENGTH);
    CHECK_EQ(o.ack.opcode, 99);
    o = command_execute(&s, 49, p, 0);
    CHECK_EQ(o.ack.opcode, 0);
    for (unsigned g = 0; g < 256; g++) {
        bool valid = g == 1 || g == 2 || g == 4 || g == 5 || g == 8 || g == 10 || g == 16 ||
                     g == 32;
        CHECK_EQ(command_gain_valid((uint8_t)g), valid);
    }
}

/* ---- whole application on the host port ---- */

typedef struct {
    proto_header_t h;
    uint8_t payload[PROTO_MAX_PAYLOAD];
} rx_frame_t;

static rx_frame_t frames[512];
static size_t n_frames;

/* Parses everything the app has written to the fake UART so far; every byte must be in a
 * valid frame. */
static void collect(void)
{
    size_t len;
    const uint8_t *tx = host_port_tx(&len);
    static proto_parser_t p;
    proto_parser_init(&p);
    n_frames = 0;
    size_t taken = 0, bad = 0;
    do {
        taken += proto_parser_write(&p, tx + taken, len - taken);
        proto_event_t ev;
        while (proto_parser_next(&p, &ev)) {
            if (ev.kind != PROTO_EV_FRAME) {
                bad++;
                continue;
            }
            if (n_frames < 512) {
                frames[n_frames].h = ev.header;
                memcpy(frames[n_frames].payload, ev.payload, ev.header.length);
                n_frames++;
            }
        }
    } while (taken < len);
    CHECK_EQ(bad, 0);
    CHECK_EQ(proto_parser_pending(&p), 0);
}

static void sample_blocks(uint32_t first_index, size_t n_blocks)
{
    static uint16_t codes[SAMPLER_BLOCK];
    for (size_t b = 0; b < n_blocks; b++) {
        for (size_t i = 0; i < SAMPLER_BLOCK; i++) {
            codes[i] = (uint16_t)((first_index + b * SAMPLER_BLOCK + i) % 4096u);
        }
        host_port_sample(codes, SAMPLER_BLOCK);
        (void)app_poll();
    }
}

static void send_command(uint16_t seq, uint8_t opcode, uint8_t arg, uint32_t cookie)
{
    uint8_t payload[PROTO_COMMAND_SIZE], wire[64];
    proto_command_t cmd = {.opcode = opcode, .arg = arg, .cookie = cookie};
    proto_pack_command(&cmd, payload);
    proto_header_t h = {.major = 1, .type = PROTO_COMMAND, .seq = seq};
    size_t n = proto_encode_frame(wire, sizeof wire, &h, payload, sizeof payload);
    host_port_rx_inject(wire, n);
    (void)app_poll();
}

static const app_config_t wired = {
    .link = PROTO_LINK_UART, .codec = PROTO_CODEC_PCM16, .gain = 1, .pace_bytes_per_s = 0};

void test_app_boot_stream(void)
{
    host_port_reset();
    app_init(&wired);
    sample_blocks(0, 3);
    collect();
    CHECK_EQ(n_frames, 4);
    CHECK_EQ(frames[0].h.type, PROTO_DEVICE_INFO);
    proto_device_info_t info;
    CHECK(proto_unpack_device_info(frames[0].payload, frames[0].h.length, &info));
    CHECK_EQ(info.sample_rate_hz, 8000);
    CHECK_EQ(info.frame_samples, PCM_FRAME_SAMPLES);
    CHECK_EQ(info.fw_major, 1);
    for (size_t i = 0; i < n_frames; i++) {
        CHECK_EQ(frames[i].h.seq, i);
    }
    for (size_t k = 0; k < 3; k++) {
        const rx_frame_t *f = &frames[1 + k];
        CHECK_EQ(f->h.type, PROTO_AUDIO_PCM16);
        CHECK_EQ(f->h.sample_index, k * SAMPLER_BLOCK);
        CHECK_EQ(f->h.length, 2 * SAMPLER_BLOCK);
        /* Code 0 is an ADC rail: the first frame is CLIPPED, and the stream starts there. */
        CHECK_EQ(f->h.flags, k == 0 ? (PROTO_FLAG_STREAM_START | PROTO_FLAG_CLIPPED) : 0);
        int16_t s5 = (int16_t)(uint16_t)(f->payload[10] | (f->payload[11] << 8));
        CHECK_EQ(s5, ((int32_t)(k * SAMPLER_BLOCK + 5) - 2048) * 16);
    }
    CHECK_EQ(host_port_gain(), 1);
}

void test_app_commands(void)
{
    host_port_reset();
    app_init(&wired);
    sample_blocks(0, 2);
    host_port_tx_clear();
    send_command(7, PROTO_OP_PING, 0, 0xDEADBEEFu);
    host_port_sample((const uint16_t[]){100, 101, 102}, 3);
    send_command(8, PROTO_OP_SET_GAIN, 16, 1);
    send_command(9, PROTO_OP_SET_GAIN, 3, 2);
    send_command(10, PROTO_OP_STOP, 0, 3);
    collect();
    CHECK_EQ(n_frames, 4);
    proto_ack_t ack;
    CHECK(proto_unpack_ack(frames[0].payload, frames[0].h.length, &ack));
    CHECK(ack.command_seq == 7 && ack.result == PROTO_ACK_OK && ack.cookie == 0xDEADBEEFu);
    CHECK_EQ(frames[0].h.sample_index, 2 * SAMPLER_BLOCK);
    CHECK(proto_unpack_ack(frames[1].payload, frames[1].h.length, &ack));
    CHECK(ack.opcode == PROTO_OP_SET_GAIN && ack.result == PROTO_ACK_OK);
    CHECK_EQ(frames[1].h.sample_index, 2 * SAMPLER_BLOCK + 3); /* first sample at gain 16 */
    CHECK(proto_unpack_ack(frames[2].payload, frames[2].h.length, &ack));
    CHECK(ack.command_seq == 9 && ack.result == PROTO_ACK_BAD_ARGUMENT);
    CHECK_EQ(host_port_gain(), 16);
    CHECK(proto_unpack_ack(frames[3].payload, frames[3].h.length, &ack));
    CHECK(ack.opcode == PROTO_OP_STOP && ack.result == PROTO_ACK_OK);
    /* Stopped: blocks complete, no audio is sent. */
    host_port_tx_clear();
    sample_blocks(0, 3);
    collect();
    CHECK_EQ(n_frames, 0);
    /* START mid-block: ACK, DEVICE_INFO, then audio from the block being acquired. */
    host_port_sample((const uint16_t[]){1, 2, 3, 4}, 4);
    uint32_t block_start = sampler_active_start(app_sampler());
    send_command(11, PROTO_OP_START, PROTO_CODEC_PCM16, 4);
    host_port_sample((const uint16_t[]){5}, 1);
    sample_blocks(0, 1);
    collect();
    CHECK(n_frames >= 3);
    CHECK_EQ(frames[0].h.type, PROTO_ACK);
    CHECK_EQ(frames[1].h.type, PROTO_DEVICE_INFO);
    proto_device_info_t info;
    CHECK(proto_unpack_device_info(frames[1].payload, frames[1].h.length, &info));
    CHECK_EQ(info.gain, 16);
    CHECK_EQ(frames[2].h.type, PROTO_AUDIO_PCM16);
    CHECK_EQ(frames[2].h.sample_index, block_start);
    CHECK(frames[2].h.flags & PROTO_FLAG_STREAM_START);
    CHECK(frames[2].h.seq == (uint16_t)(frames[1].h.seq + 1));
    /* Noise and a corrupted command on the RX line: counted, never acted on. */
    host_port_tx_clear();
    uint8_t junk[] = {0x00, 0xA5, 0x5A, 0x01, 0x00, 0x10, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                      0x00, 0x08, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                      0x00, 0x00, 0x00};
    host_port_rx_inject(junk, sizeof junk);
    (void)app_poll();
    collect();
    CHECK_EQ(n_frames, 0);
    app_counters_t c = app_counters();
    CHECK_EQ(c.rx_crc_errors, 1);
    CHECK(c.rx_skipped_bytes >= 1);
}

void test_app_adpcm_stream(void)
{
    host_port_reset();
    const app_config_t ble = {.link = PROTO_LINK_BLE, .codec = PROTO_CODEC_ADPCM, .gain = 8,
                              .pace_bytes_per_s = 8000};
    app_init(&ble);
    uint32_t t = 0;
    /* 2 s of device time, polling every block (20 ms); pacing must keep up with ADPCM. */
    static uint16_t codes[SAMPLER_BLOCK];
    for (uint32_t b = 0; b < 100; b++) {
        for (size_t i = 0; i < SAMPLER_BLOCK; i++) {
            codes[i] = (uint16_t)(2048 + ((b * SAMPLER_BLOCK + i) % 64) * 8);
        }
        host_port_sample(codes, SAMPLER_BLOCK);
        t += 20000;
        host_port_set_time_us(t);
        (void)app_poll();
    }
    for (int k = 0; k < 10; k++) {
        t += 20000;
        host_port_set_time_us(t);
        (void)app_poll();
    }
    collect();
    size_t audio = 0;
    uint32_t expect_index = 0;
    for (size_t i = 0; i < n_frames; i++) {
        CHECK_EQ(frames[i].h.seq, i);
        if (frames[i].h.type != PROTO_AUDIO_ADPCM) {
            continue;
        }
        CHECK_EQ(frames[i].h.sample_index, expect_index);
        CHECK_EQ(frames[i].h.length, 4 + ADPCM_FRAME_SAMPLES / 2);
        expect_index += ADPCM_FRAME_SAMPLES;
        audio++;
    }
    CHECK_EQ(audio, 50);
    CHECK_EQ(app_counters().tx_drops, 0);
    proto_device_info_t info;
    CHECK(proto_unpack_device_info(frames[0].payload, frames[0].h.length, &info));
    CHECK(info.codec == PROTO_CODEC_ADPCM && info.link == PROTO_LINK_BLE && info.gain == 8);
    CHECK_EQ(info.frame_samples, ADPCM_FRAME_SAMPLES);
}

void test_app_status_timing(void)
{
    host_port_reset();
    app_init(&wired);
    static uint16_t codes[SAMPLER_BLOCK];
    for (size_t i = 0; i < SAMPLER_BLOCK; i++) {
        codes[i] = 4095; /* rail: every sample clips */
    }
    for (uint32_t b = 0; b < 100; b++) {
        host_port_set_time_us(777u + (b + 1) * 20000u);
        host_port_sample(codes, SAMPLER_BLOCK);
        (void)app_poll();
    }
    collect();
    size_t statuses = 0;
    for (size_t i = 0; i < n_frames; i++) {
        if (frames[i].h.type != PROTO_STATUS) {
            continue;
        }
        statuses++;
        proto_status_t st;
        CHECK(proto_unpack_status(frames[i].payload, frames[i].h.length, &st));
        CHECK_EQ(frames[i].h.sample_index, statuses * 8000);
        CHECK_EQ(st.uptime_us, 777u + statuses * 1000000u);
        CHECK_EQ(st.clip_count, statuses * 8000);
        CHECK_EQ(st.state_flags, PROTO_STATUS_STREAMING);
        CHECK_EQ(st.battery_pct, PROTO_BATTERY_UNKNOWN);
    }
    CHECK_EQ(statuses, 2);
}
