#include "proto.h"

#include <string.h>

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    put_u16(p, (uint16_t)v);
    put_u16(p + 2, (uint16_t)(v >> 16));
}

static uint16_t get_u16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)get_u16(p) | ((uint32_t)get_u16(p + 2) << 16);
}

uint32_t proto_crc32(uint32_t crc, const uint8_t *data, size_t len)
{
    /* Nibble table: 64 bytes of flash instead of 1 KiB, fast enough for 17 kB/s. */
    static const uint32_t table[16] = {
        0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu, 0x76DC4190u, 0x6B6B51F4u,
        0x4DB26158u, 0x5005713Cu, 0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
        0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
    };
    crc = ~crc;
    for (size_t i = 0; i < len; i++) {
        crc ^= data[i];
        crc = (crc >> 4) ^ table[crc & 0x0Fu];
        crc = (crc >> 4) ^ table[crc & 0x0Fu];
    }
    return ~crc;
}

size_t proto_encode_frame(uint8_t *out, size_t cap, const proto_header_t *h,
                          const uint8_t *payload, size_t len)
{
    if (len > PROTO_MAX_PAYLOAD || cap < PROTO_OVERHEAD + len) {
        return 0;
    }
    out[0] = PROTO_SYNC0;
    out[1] = PROTO_SYNC1;
    out[2] = h->major;
    out[3] = h->minor;
    out[4] = h->type;
    out[5] = h->flags;
    put_u16(out + 6, h->seq);
    put_u32(out + 8, h->sample_index);
    put_u16(out + 12, (uint16_t)len);
    if (len > 0) {
        memmove(out + PROTO_HEADER_SIZE, payload, len);
    }
    put_u32(out + PROTO_HEADER_SIZE + len, proto_crc32(0, out, PROTO_HEADER_SIZE + len));
    return PROTO_OVERHEAD + len;
}

void proto_read_header(const uint8_t *f, proto_header_t *h)
{
    h->major = f[2];
    h->minor = f[3];
    h->type = f[4];
    h->flags = f[5];
    h->seq = get_u16(f + 6);
    h->sample_index = get_u32(f + 8);
    h->length = get_u16(f + 12);
}

void proto_pack_device_info(const proto_device_info_t *m, uint8_t out[PROTO_DEVICE_INFO_SIZE])
{
    put_u32(out, m->device_id);
    out[4] = m->fw_major;
    out[5] = m->fw_minor;
    out[6] = m->fw_patch;
    out[7] = m->sensor_type;
    put_u32(out + 8, m->sample_rate_hz);
    out[12] = m->bit_depth;
    out[13] = m->gain;
    out[14] = m->codec;
    out[15] = m->link;
    put_u16(out + 16, m->frame_samples);
}

bool proto_unpack_device_info(const uint8_t *p, size_t len, proto_device_info_t *m)
{
    if (len < PROTO_DEVICE_INFO_SIZE) {
        return false;
    }
    m->device_id = get_u32(p);
    m->fw_major = p[4];
    m->fw_minor = p[5];
    m->fw_patch = p[6];
    m->sensor_type = p[7];
    m->sample_rate_hz = get_u32(p + 8);
    m->bit_depth = p[12];
    m->gain = p[13];
    m->codec = p[14];
    m->link = p[15];
    m->frame_samples = get_u16(p + 16);
    return true;
}

void proto_pack_status(const proto_status_t *m, uint8_t out[PROTO_STATUS_SIZE])
{
    put_u16(out, m->battery_mv);
    out[2] = m->battery_pct;
    out[3] = m->state_flags;
    put_u32(out + 4, m->clip_count);
    put_u32(out + 8, m->adc_overruns);
    put_u32(out + 12, m->tx_drops);
    put_u32(out + 16, m->uptime_us);
}

bool proto_unpack_status(const uint8_t *p, size_t len, proto_status_t *m)
{
    if (len < PROTO_STATUS_SIZE) {
        return false;
    }
    m->battery_mv = get_u16(p);
    m->battery_pct = p[2];
    m->state_flags = p[3];
    m->clip_count = get_u32(p + 4);
    m->adc_overruns = get_u32(p + 8);
    m->tx_drops = get_u32(p + 12);
    m->uptime_us = get_u32(p + 16);
    return true;
}

void proto_pack_command(const proto_command_t *m, uint8_t out[PROTO_COMMAND_SIZE])
{
    out[0] = m->opcode;
    out[1] = m->arg;
    put_u16(out + 2, 0);
    put_u32(out + 4, m->cookie);
}

bool proto_unpack_command(const uint8_t *p, size_t len, proto_command_t *m)
{
    if (len < PROTO_COMMAND_SIZE) {
        return false;
    }
    m->opcode = p[0];
    m->arg = p[1];
    m->cookie = get_u32(p + 4);
    return true;
}

void proto_pack_ack(const proto_ack_t *m, uint8_t out[PROTO_ACK_SIZE])
{
    put_u16(out, m->command_seq);
    out[2] = m->opcode;
    out[3] = m->result;
    put_u32(out + 4, m->cookie);
}

bool proto_unpack_ack(const uint8_t *p, size_t len, proto_ack_t *m)
{
    if (len < PROTO_ACK_SIZE) {
        return false;
    }
    m->command_seq = get_u16(p);
    m->opcode = p[2];
    m->result = p[3];
    m->cookie = get_u32(p + 4);
    return true;
}

void proto_pack_adpcm_header(int16_t predictor, uint8_t step_index,
                             uint8_t out[PROTO_ADPCM_HEADER_SIZE])
{
    put_u16(out, (uint16_t)predictor);
    out[2] = step_index;
    out[3] = 0;
}

bool proto_unpack_adpcm_header(const uint8_t *p, size_t len, int16_t *predictor,
                               uint8_t *step_index)
{
    if (len <= PROTO_ADPCM_HEADER_SIZE || p[2] > PROTO_ADPCM_MAX_STEP_INDEX) {
        return false;
    }
    uint16_t raw = get_u16(p);
    /* Two's complement reinterpretation without implementation-defined conversion. */
    *predictor = (int16_t)(raw < 0x8000u ? (int32_t)raw : (int32_t)raw - 0x10000);
    *step_index = p[2];
    return true;
}

void proto_parser_init(proto_parser_t *p)
{
    p->len = 0;
    p->to_drop = 0;
}

static void drop_consumed(proto_parser_t *p)
{
    if (p->to_drop == 0) {
        return;
    }
    memmove(p->buf, p->buf + p->to_drop, p->len - p->to_drop);
    p->len -= p->to_drop;
    p->to_drop = 0;
}

size_t proto_parser_write(proto_parser_t *p, const uint8_t *data, size_t len)
{
    drop_consumed(p);
    size_t room = sizeof p->buf - p->len;
    size_t n = len < room ? len : room;
    if (n > 0) {
        memcpy(p->buf + p->len, data, n);
        p->len += n;
    }
    return n;
}

size_t proto_parser_pending(const proto_parser_t *p) { return p->len - p->to_drop; }

static size_t find_sync(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] == PROTO_SYNC0 && buf[i + 1] == PROTO_SYNC1) {
            return i;
        }
    }
    /* No pair: everything is noise except a trailing first sync byte. */
    return (len > 0 && buf[len - 1] == PROTO_SYNC0) ? len - 1 : len;
}

static bool emit(proto_parser_t *p, proto_event_t *ev, proto_event_kind_t kind, size_t n)
{
    ev->kind = kind;
    ev->consumed = n;
    p->to_drop = n;
    return true;
}

bool proto_parser_next(proto_parser_t *p, proto_event_t *ev)
{
    drop_consumed(p);
    size_t start = find_sync(p->buf, p->len);
    if (start > 0) {
        return emit(p, ev, PROTO_EV_SKIPPED, start);
    }
    if (p->len < PROTO_HEADER_SIZE) {
        return false;
    }
    proto_read_header(p->buf, &ev->header);
    if (ev->header.length > PROTO_MAX_PAYLOAD) {
        return emit(p, ev, PROTO_EV_SKIPPED, 1);
    }
    size_t total = PROTO_OVERHEAD + ev->header.length;
    if (p->len < total) {
        return false;
    }
    size_t body = PROTO_HEADER_SIZE + ev->header.length;
    if (proto_crc32(0, p->buf, body) != get_u32(p->buf + body)) {
        return emit(p, ev, PROTO_EV_CRC_ERROR, 1);
    }
    if (ev->header.major != PROTO_MAJOR) {
        return emit(p, ev, PROTO_EV_VERSION_ERROR, total);
    }
    ev->frame = p->buf;
    ev->payload = p->buf + PROTO_HEADER_SIZE;
    return emit(p, ev, PROTO_EV_FRAME, total);
}
