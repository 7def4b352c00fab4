/* libFuzzer harness: the frame parser, payload decoders, command parser and ADPCM codec must
 * take any byte stream without undefined behaviour (built with ASan + UBSan) and keep their
 * invariants. Seeded from the golden vectors of docs/protocol.md (make_seeds.py). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adpcm.h"
#include "command.h"
#include "proto.h"

#define REQUIRE(cond)      \
    do {                   \
        if (!(cond)) {     \
            abort();       \
        }                  \
    } while (0)

static void check_payload(const proto_header_t *h, const uint8_t *payload)
{
    uint8_t again[PROTO_MAX_PAYLOAD];
    switch (h->type) {
    case PROTO_DEVICE_INFO: {
        proto_device_info_t m;
        if (proto_unpack_device_info(payload, h->length, &m)) {
            proto_pack_device_info(&m, again);
            REQUIRE(memcmp(again, payload, PROTO_DEVICE_INFO_SIZE) == 0);
        }
        break;
    }
    case PROTO_STATUS: {
        proto_status_t m;
        if (proto_unpack_status(payload, h->length, &m)) {
            proto_pack_status(&m, again);
            REQUIRE(memcmp(again, payload, PROTO_STATUS_SIZE) == 0);
        }
        break;
    }
    case PROTO_ACK: {
        proto_ack_t m;
        if (proto_unpack_ack(payload, h->length, &m)) {
            proto_pack_ack(&m, again);
            REQUIRE(memcmp(again, payload, PROTO_ACK_SIZE) == 0);
        }
        break;
    }
    case PROTO_COMMAND: {
        device_settings_t s = {.streaming = false, .codec = 0, .gain = 1};
        command_outcome_t out = command_execute(&s, h->seq, payload, h->length);
        REQUIRE(out.ack.command_seq == h->seq);
        REQUIRE(out.ack.result <= PROTO_ACK_BAD_LENGTH);
        REQUIRE(command_gain_valid(s.gain));
        REQUIRE(s.codec == PROTO_CODEC_PCM16 || s.codec == PROTO_CODEC_ADPCM);
        if (out.ack.result != PROTO_ACK_OK) {
            REQUIRE(!out.apply_gain && !out.stream_started && !s.streaming);
        }
        break;
    }
    case PROTO_AUDIO_ADPCM: {
        int16_t predictor;
        uint8_t step;
        if (proto_unpack_adpcm_header(payload, h->length, &predictor, &step)) {
            static int16_t pcm[2 * PROTO_MAX_PAYLOAD];
            size_t nbytes = h->length - PROTO_ADPCM_HEADER_SIZE;
            adpcm_state_t st = {predictor, step};
            adpcm_decode(&st, payload + PROTO_ADPCM_HEADER_SIZE, nbytes, pcm);
            REQUIRE(st.step_index <= PROTO_ADPCM_MAX_STEP_INDEX);
        } else {
            REQUIRE(h->length <= PROTO_ADPCM_HEADER_SIZE ||
                    payload[2] > PROTO_ADPCM_MAX_STEP_INDEX);
        }
        break;
    }
    default:
        break;
    }
}

/* Any bytes as int16 samples: encoder and decoder must end in the same state. */
static void check_adpcm_round_trip(const uint8_t *data, size_t size)
{
    static int16_t in[512], out[512];
    static uint8_t codes[256];
    size_t n = size / 2 > 512 ? 512 : (size / 2) & ~(size_t)1;
    for (size_t i = 0; i < n; i++) {
        in[i] = (int16_t)(uint16_t)(data[2 * i] | (data[2 * i + 1] << 8));
    }
    uint8_t start_step = size > 0 ? (uint8_t)(data[0] % 89u) : 0;
    adpcm_state_t enc = {size > 1 ? in[0] : 0, start_step};
    adpcm_state_t dec = enc;
    adpcm_encode(&enc, in, n, codes);
    adpcm_decode(&dec, codes, n / 2, out);
    REQUIRE(enc.predictor == dec.predictor && enc.step_index == dec.step_index);
    REQUIRE(enc.step_index <= PROTO_ADPCM_MAX_STEP_INDEX);
}

static void parse_stream(const uint8_t *data, size_t size, size_t chunk);

/* The CRC is a wall for a mutating fuzzer: in "sealed" mode the harness turns the input
 * into a CRC-valid frame (sync, true length, CRC recomputed) so that mutations reach the
 * header checks and every payload decoder. */
static void parse_sealed(const uint8_t *data, size_t size)
{
    static uint8_t frame[PROTO_MAX_FRAME];
    size_t body = size < PROTO_HEADER_SIZE ? PROTO_HEADER_SIZE : size;
    if (body > PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD) {
        body = PROTO_HEADER_SIZE + PROTO_MAX_PAYLOAD;
    }
    memset(frame, 0, sizeof frame);
    memcpy(frame, data, size < body ? size : body);
    frame[0] = PROTO_SYNC0;
    frame[1] = PROTO_SYNC1;
    size_t len = body - PROTO_HEADER_SIZE;
    frame[12] = (uint8_t)len;
    frame[13] = (uint8_t)(len >> 8);
    uint32_t crc = proto_crc32(0, frame, body);
    for (int i = 0; i < 4; i++) {
        frame[body + (size_t)i] = (uint8_t)(crc >> (8 * i));
    }
    parse_stream(frame, body + PROTO_CRC_SIZE, PROTO_MAX_FRAME);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && (data[0] & 0x80u)) {
        parse_sealed(data + 1, size - 1);
    } else {
        parse_stream(data, size, size > 0 ? (size_t)(data[0] % 64u) + 1u : 1u);
    }
    check_adpcm_round_trip(data, size);
    return 0;
}

static void parse_stream(const uint8_t *data, size_t size, size_t chunk)
{
    static proto_parser_t parser;
    proto_parser_init(&parser);
    size_t fed = 0, accounted = 0;
    while (fed < size) {
        size_t n = size - fed < chunk ? size - fed : chunk;
        size_t taken = proto_parser_write(&parser, data + fed, n);
        fed += taken;
        proto_event_t ev;
        while (proto_parser_next(&parser, &ev)) {
            REQUIRE(ev.consumed >= 1);
            accounted += ev.consumed;
            if (ev.kind == PROTO_EV_FRAME) {
                REQUIRE(ev.header.major == PROTO_MAJOR);
                REQUIRE(ev.header.length <= PROTO_MAX_PAYLOAD);
                REQUIRE(ev.consumed == PROTO_OVERHEAD + ev.header.length);
                uint8_t again[PROTO_MAX_FRAME];
                size_t len = proto_encode_frame(again, sizeof again, &ev.header, ev.payload,
                                                ev.header.length);
                REQUIRE(len == ev.consumed && memcmp(again, ev.frame, len) == 0);
                check_payload(&ev.header, ev.payload);
            } else if (ev.kind == PROTO_EV_VERSION_ERROR) {
                REQUIRE(ev.header.major != PROTO_MAJOR);
            } else if (ev.kind == PROTO_EV_CRC_ERROR) {
                REQUIRE(ev.consumed == 1);
            }
        }
        REQUIRE(proto_parser_pending(&parser) <= PROTO_MAX_FRAME);
    }
    REQUIRE(accounted + proto_parser_pending(&parser) == size);
}
