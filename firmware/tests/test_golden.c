/* C codec against the golden vectors of docs/protocol.md (generated golden_vectors.h). */
#include <string.h>

#include "adpcm.h"
#include "check.h"
#include "framer.h"
#include "golden_vectors.h"
#include "proto.h"

/* Feeds bytes and collects events; returns the number of events (at most cap). */
static size_t parse_all(const uint8_t *data, size_t len, proto_event_t *events, size_t cap,
                        size_t *accounted)
{
    static proto_parser_t parser;
    proto_parser_init(&parser);
    size_t n = 0, taken = 0;
    *accounted = 0;
    do {
        taken += proto_parser_write(&parser, data + taken, len - taken);
        proto_event_t ev;
        while (proto_parser_next(&parser, &ev)) {
            *accounted += ev.consumed;
            if (n < cap) {
                events[n] = ev;
            }
            n++;
        }
    } while (taken < len);
    *accounted += proto_parser_pending(&parser);
    return n;
}

void test_golden_crc(void)
{
    CHECK(N_GOLDEN_CRCS >= 2);
    for (size_t i = 0; i < N_GOLDEN_CRCS; i++) {
        const golden_crc_t *v = &golden_crcs[i];
        CHECK_EQ(proto_crc32(0, (const uint8_t *)v->ascii, strlen(v->ascii)), v->crc);
    }
    /* Continuing a CRC over two chunks equals one pass. */
    const uint8_t *s = (const uint8_t *)"123456789";
    CHECK_EQ(proto_crc32(proto_crc32(0, s, 4), s + 4, 5), 0xCBF43926u);
}

void test_golden_adpcm(void)
{
    CHECK(N_GOLDEN_ADPCMS >= 3);
    for (size_t i = 0; i < N_GOLDEN_ADPCMS; i++) {
        const golden_adpcm_t *v = &golden_adpcms[i];
        uint8_t data[64] = {0};
        int16_t decoded[128] = {0};
        adpcm_state_t enc = {v->predictor, v->step_index};
        adpcm_encode(&enc, v->samples, v->n, data);
        CHECK(memcmp(data, v->data, v->data_len) == 0);
        CHECK_EQ(enc.predictor, v->end_predictor);
        CHECK_EQ(enc.step_index, v->end_step_index);
        adpcm_state_t dec = {v->predictor, v->step_index};
        adpcm_decode(&dec, v->data, v->data_len, decoded);
        for (size_t k = 0; k < 2 * v->data_len; k++) {
            CHECK_EQ(decoded[k], v->decoded[k]);
        }
        CHECK_EQ(dec.predictor, v->end_predictor);
        CHECK_EQ(dec.step_index, v->end_step_index);
    }
}

static void check_payload(const golden_frame_t *v, const uint8_t *payload, size_t len)
{
    switch (v->header.type) {
    case PROTO_DEVICE_INFO: {
        proto_device_info_t m;
        CHECK(proto_unpack_device_info(payload, len, &m));
        CHECK_EQ(m.device_id, v->info.device_id);
        CHECK_EQ(m.fw_major, v->info.fw_major);
        CHECK_EQ(m.fw_minor, v->info.fw_minor);
        CHECK_EQ(m.fw_patch, v->info.fw_patch);
        CHECK_EQ(m.sensor_type, v->info.sensor_type);
        CHECK_EQ(m.sample_rate_hz, v->info.sample_rate_hz);
        CHECK_EQ(m.bit_depth, v->info.bit_depth);
        CHECK_EQ(m.gain, v->info.gain);
        CHECK_EQ(m.codec, v->info.codec);
        CHECK_EQ(m.link, v->info.link);
        CHECK_EQ(m.frame_samples, v->info.frame_samples);
        break;
    }
    case PROTO_STATUS: {
        proto_status_t m;
        CHECK(proto_unpack_status(payload, len, &m));
        CHECK_EQ(m.battery_mv, v->status.battery_mv);
        CHECK_EQ(m.battery_pct, v->status.battery_pct);
        CHECK_EQ(m.state_flags, v->status.state_flags);
        CHECK_EQ(m.clip_count, v->status.clip_count);
        CHECK_EQ(m.adc_overruns, v->status.adc_overruns);
        CHECK_EQ(m.tx_drops, v->status.tx_drops);
        CHECK_EQ(m.uptime_us, v->status.uptime_us);
        break;
    }
    case PROTO_COMMAND: {
        proto_command_t m;
        CHECK(proto_unpack_command(payload, len, &m));
        CHECK_EQ(m.opcode, v->command.opcode);
        CHECK_EQ(m.arg, v->command.arg);
        CHECK_EQ(m.cookie, v->command.cookie);
        break;
    }
    case PROTO_ACK: {
        proto_ack_t m;
        CHECK(proto_unpack_ack(payload, len, &m));
        CHECK_EQ(m.command_seq, v->ack.command_seq);
        CHECK_EQ(m.opcode, v->ack.opcode);
        CHECK_EQ(m.result, v->ack.result);
        CHECK_EQ(m.cookie, v->ack.cookie);
        break;
    }
    case PROTO_AUDIO_PCM16:
        CHECK_EQ(len, 2 * v->n_samples);
        for (size_t k = 0; k < v->n_samples && 2 * k + 1 < len; k++) {
            int16_t s = (int16_t)(uint16_t)(payload[2 * k] | (payload[2 * k + 1] << 8));
            CHECK_EQ(s, v->samples[k]);
        }
        break;
    case PROTO_AUDIO_ADPCM: {
        int16_t predictor;
        uint8_t step_index;
        CHECK(proto_unpack_adpcm_header(payload, len, &predictor, &step_index));
        CHECK_EQ(predictor, v->predictor);
        CHECK_EQ(step_index, v->step_index);
        CHECK_EQ(len - PROTO_ADPCM_HEADER_SIZE, v->adpcm_len);
        CHECK(memcmp(payload + PROTO_ADPCM_HEADER_SIZE, v->adpcm_data, v->adpcm_len) == 0);
        int16_t decoded[64];
        adpcm_state_t st = {predictor, step_index};
        adpcm_decode(&st, v->adpcm_data, v->adpcm_len, decoded);
        for (size_t k = 0; k < v->n_samples; k++) {
            CHECK_EQ(decoded[k], v->samples[k]);
        }
        break;
    }
    default:
        CHECK(!"golden frame of unknown type");
    }
}

void test_golden_frames_decode(void)
{
    CHECK(N_GOLDEN_FRAMES >= 6);
    for (size_t i = 0; i < N_GOLDEN_FRAMES; i++) {
        const golden_frame_t *v = &golden_frames[i];
        proto_event_t ev[4];
        size_t accounted;
        size_t n = parse_all(v->bytes, v->len, ev, 4, &accounted);
        CHECK_EQ(n, 1);
        CHECK_EQ(accounted, v->len);
        CHECK_EQ(ev[0].kind, PROTO_EV_FRAME);
        CHECK_EQ(ev[0].consumed, v->len);
        CHECK_EQ(ev[0].header.major, v->header.major);
        CHECK_EQ(ev[0].header.minor, v->header.minor);
        CHECK_EQ(ev[0].header.type, v->header.type);
        CHECK_EQ(ev[0].header.flags, v->header.flags);
        CHECK_EQ(ev[0].header.seq, v->header.seq);
        CHECK_EQ(ev[0].header.sample_index, v->header.sample_index);
        CHECK_EQ(ev[0].header.length, v->header.length);
        uint32_t crc = (uint32_t)v->bytes[v->len - 4] | ((uint32_t)v->bytes[v->len - 3] << 8) |
                       ((uint32_t)v->bytes[v->len - 2] << 16) |
                       ((uint32_t)v->bytes[v->len - 1] << 24);
        CHECK_EQ(crc, v->crc);
        CHECK_EQ(proto_crc32(0, v->bytes, v->len - 4), v->crc);
        if (ev[0].kind == PROTO_EV_FRAME) {
            check_payload(v, ev[0].payload, ev[0].header.length);
        }
    }
}

/* Builds the payload from the vector's decoded fields with the firmware's own encoders. */
static size_t build_frame(const golden_frame_t *v, uint8_t *out, size_t cap)
{
    uint8_t payload[PROTO_MAX_PAYLOAD];
    size_t len = 0;
    switch (v->header.type) {
    case PROTO_DEVICE_INFO:
        proto_pack_device_info(&v->info, payload);
        len = PROTO_DEVICE_INFO_SIZE;
        break;
    case PROTO_STATUS:
        proto_pack_status(&v->status, payload);
        len = PROTO_STATUS_SIZE;
        break;
    case PROTO_COMMAND:
        proto_pack_command(&v->command, payload);
        len = PROTO_COMMAND_SIZE;
        break;
    case PROTO_ACK:
        proto_pack_ack(&v->ack, payload);
        len = PROTO_ACK_SIZE;
        break;
    case PROTO_AUDIO_PCM16: {
        framer_t f = {.seq = v->header.seq};
        return framer_pcm(&f, v->samples, v->n_samples, v->header.sample_index,
                          v->header.flags, out, cap);
    }
    case PROTO_AUDIO_ADPCM: {
        /* Encode from the ADPCM vector whose output this frame carries. */
        framer_t f = {.seq = v->header.seq, .adpcm = {v->predictor, v->step_index}};
        for (size_t i = 0; i < N_GOLDEN_ADPCMS; i++) {
            const golden_adpcm_t *a = &golden_adpcms[i];
            if (a->data_len == v->adpcm_len && memcmp(a->data, v->adpcm_data, a->data_len) == 0 &&
                a->predictor == v->predictor && a->step_index == v->step_index) {
                return framer_adpcm(&f, a->samples, a->n, v->header.sample_index,
                                    v->header.flags, out, cap);
            }
        }
        CHECK(!"ADPCM frame vector without a matching ADPCM vector");
        return 0;
    }
    default:
        return 0;
    }
    return proto_encode_frame(out, cap, &v->header, payload, len);
}

void test_golden_frames_encode(void)
{
    for (size_t i = 0; i < N_GOLDEN_FRAMES; i++) {
        const golden_frame_t *v = &golden_frames[i];
        uint8_t out[PROTO_MAX_FRAME];
        size_t n = build_frame(v, out, sizeof out);
        CHECK_EQ(n, v->len);
        CHECK(n == v->len && memcmp(out, v->bytes, n) == 0);
    }
}

void test_golden_bit_flips_rejected(void)
{
    for (size_t i = 0; i < N_GOLDEN_FRAMES; i++) {
        const golden_frame_t *v = &golden_frames[i];
        uint8_t bad[PROTO_MAX_FRAME];
        int accepted = 0;
        for (size_t bit = 0; bit < 8 * v->len; bit++) {
            memcpy(bad, v->bytes, v->len);
            bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
            proto_event_t ev[64];
            size_t accounted;
            size_t n = parse_all(bad, v->len, ev, 64, &accounted);
            CHECK_EQ(accounted, v->len);
            for (size_t k = 0; k < n && k < 64; k++) {
                accepted += ev[k].kind == PROTO_EV_FRAME;
            }
        }
        CHECK_EQ(accepted, 0);
    }
}

void test_golden_rejects(void)
{
    CHECK(N_GOLDEN_REJECTS >= 3);
    for (size_t i = 0; i < N_GOLDEN_REJECTS; i++) {
        const golden_reject_t *v = &golden_rejects[i];
        proto_event_t ev[64];
        size_t accounted;
        size_t n = parse_all(v->bytes, v->len, ev, 64, &accounted);
        CHECK(n >= 1);
        CHECK_EQ(accounted, v->len);
        for (size_t k = 0; k < n && k < 64; k++) {
            CHECK(ev[k].kind != PROTO_EV_FRAME);
        }
        if (strcmp(v->expect, "crc_error") == 0) {
            CHECK_EQ(ev[0].kind, PROTO_EV_CRC_ERROR);
        } else if (strcmp(v->expect, "version_error") == 0) {
            CHECK_EQ(ev[0].kind, PROTO_EV_VERSION_ERROR);
            CHECK_EQ(ev[0].header.major, 2);
            CHECK_EQ(ev[0].consumed, v->len);
        } else if (strcmp(v->expect, "bad_length") == 0) {
            for (size_t k = 0; k < n && k < 64; k++) {
                CHECK_EQ(ev[k].kind, PROTO_EV_SKIPPED);
            }
        } else {
            CHECK(!"unknown expect value in reject vector");
        }
    }
}
