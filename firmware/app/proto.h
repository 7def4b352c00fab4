/* Wire protocol v1.0 C codec. Normative spec: docs/protocol.md (golden vectors there). */
#ifndef PROTO_H
#define PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_MAJOR 1u
#define PROTO_MINOR 0u
#define PROTO_SYNC0 0xA5u
#define PROTO_SYNC1 0x5Au
#define PROTO_HEADER_SIZE 14u
#define PROTO_CRC_SIZE 4u
#define PROTO_OVERHEAD (PROTO_HEADER_SIZE + PROTO_CRC_SIZE)
#define PROTO_MAX_PAYLOAD 1024u
#define PROTO_MAX_FRAME (PROTO_OVERHEAD + PROTO_MAX_PAYLOAD)

enum proto_msg_type {
    PROTO_DEVICE_INFO = 0x01,
    PROTO_AUDIO_PCM16 = 0x02,
    PROTO_AUDIO_ADPCM = 0x03,
    PROTO_STATUS = 0x04,
    PROTO_ACK = 0x05,
    PROTO_COMMAND = 0x10,
};

enum proto_flag { PROTO_FLAG_STREAM_START = 0x01, PROTO_FLAG_CLIPPED = 0x02 };
enum proto_opcode {
    PROTO_OP_START = 1,
    PROTO_OP_STOP = 2,
    PROTO_OP_SET_GAIN = 3,
    PROTO_OP_PING = 4,
    PROTO_OP_GET_INFO = 5,
};
enum proto_ack_result {
    PROTO_ACK_OK = 0,
    PROTO_ACK_BAD_ARGUMENT = 1,
    PROTO_ACK_UNKNOWN_OPCODE = 2,
    PROTO_ACK_BAD_LENGTH = 3,
};
enum proto_codec { PROTO_CODEC_PCM16 = 0, PROTO_CODEC_ADPCM = 1 };
enum proto_sensor { PROTO_SENSOR_UNKNOWN = 0, PROTO_SENSOR_PIEZO = 1 };
enum proto_link { PROTO_LINK_UART = 0, PROTO_LINK_BLE = 1 };

typedef struct {
    uint8_t major;
    uint8_t minor;
    uint8_t type;
    uint8_t flags;
    uint16_t seq;
    uint32_t sample_index;
    uint16_t length;
} proto_header_t;

#define PROTO_DEVICE_INFO_SIZE 18u
typedef struct {
    uint32_t device_id;
    uint8_t fw_major, fw_minor, fw_patch, sensor_type;
    uint32_t sample_rate_hz;
    uint8_t bit_depth, gain, codec, link;
    uint16_t frame_samples;
} proto_device_info_t;

#define PROTO_STATUS_SIZE 20u
#define PROTO_STATUS_STREAMING 0x01u
#define PROTO_BATTERY_UNKNOWN 0xFFu
typedef struct {
    uint16_t battery_mv;
    uint8_t battery_pct, state_flags;
    uint32_t clip_count, adc_overruns, tx_drops, uptime_us;
} proto_status_t;

#define PROTO_COMMAND_SIZE 8u
typedef struct {
    uint8_t opcode, arg;
    uint32_t cookie;
} proto_command_t;

#define PROTO_ACK_SIZE 8u
typedef struct {
    uint16_t command_seq;
    uint8_t opcode, result;
    uint32_t cookie;
} proto_ack_t;

#define PROTO_ADPCM_HEADER_SIZE 4u
#define PROTO_ADPCM_MAX_STEP_INDEX 88u

/* CRC-32/ISO-HDLC; pass 0 to start, a previous result to continue. */
uint32_t proto_crc32(uint32_t crc, const uint8_t *data, size_t len);

/* Writes header + payload + CRC into out; returns the frame size, or 0 if the payload is
 * longer than PROTO_MAX_PAYLOAD or out is too small. h->length is ignored (len is used). */
size_t proto_encode_frame(uint8_t *out, size_t cap, const proto_header_t *h,
                          const uint8_t *payload, size_t len);
void proto_read_header(const uint8_t *frame, proto_header_t *h);

void proto_pack_device_info(const proto_device_info_t *m, uint8_t out[PROTO_DEVICE_INFO_SIZE]);
bool proto_unpack_device_info(const uint8_t *p, size_t len, proto_device_info_t *m);
void proto_pack_status(const proto_status_t *m, uint8_t out[PROTO_STATUS_SIZE]);
bool proto_unpack_status(const uint8_t *p, size_t len, proto_status_t *m);
void proto_pack_command(const proto_command_t *m, uint8_t out[PROTO_COMMAND_SIZE]);
bool proto_unpack_command(const uint8_t *p, size_t len, proto_command_t *m);
void proto_pack_ack(const proto_ack_t *m, uint8_t out[PROTO_ACK_SIZE]);
bool proto_unpack_ack(const uint8_t *p, size_t len, proto_ack_t *m);
/* ADPCM payload header: predictor and step index before the first sample. */
void proto_pack_adpcm_header(int16_t predictor, uint8_t step_index,
                             uint8_t out[PROTO_ADPCM_HEADER_SIZE]);
bool proto_unpack_adpcm_header(const uint8_t *p, size_t len, int16_t *predictor,
                               uint8_t *step_index);

/* Incremental receiver (spec section 5.7). Write bytes in, pull events out. */
typedef enum {
    PROTO_EV_FRAME,
    PROTO_EV_SKIPPED,
    PROTO_EV_CRC_ERROR,
    PROTO_EV_VERSION_ERROR,
} proto_event_kind_t;

typedef struct {
    proto_event_kind_t kind;
    size_t consumed;        /* input bytes this event accounts for */
    proto_header_t header;  /* FRAME and VERSION_ERROR */
    const uint8_t *frame;   /* FRAME: whole frame; valid until the next parser call */
    const uint8_t *payload; /* FRAME: payload bytes (header.length of them) */
} proto_event_t;

typedef struct {
    uint8_t buf[PROTO_MAX_FRAME];
    size_t len;
    size_t to_drop; /* bytes of the last returned event, dropped lazily */
} proto_parser_t;

void proto_parser_init(proto_parser_t *p);
/* Copies as many bytes as fit; returns how many were taken. */
size_t proto_parser_write(proto_parser_t *p, const uint8_t *data, size_t len);
/* Next event, or false when more input is needed. */
bool proto_parser_next(proto_parser_t *p, proto_event_t *ev);
size_t proto_parser_pending(const proto_parser_t *p);

#endif
