#include "framer.h"

void framer_init(framer_t *f)
{
    f->seq = 0;
    f->adpcm.predictor = 0;
    f->adpcm.step_index = 0;
}

int16_t framer_code_to_pcm(uint16_t code)
{
    int32_t centred = (int32_t)(code & ADC_MAX_CODE) - ADC_MIDSCALE;
    return (int16_t)(centred * 16);
}

uint32_t framer_convert(const uint16_t *codes, size_t n, int16_t *pcm)
{
    uint32_t clipped = 0;
    for (size_t i = 0; i < n; i++) {
        uint16_t code = (uint16_t)(codes[i] & ADC_MAX_CODE);
        clipped += (code == 0u || code == ADC_MAX_CODE) ? 1u : 0u;
        pcm[i] = framer_code_to_pcm(code);
    }
    return clipped;
}

size_t framer_frame(framer_t *f, uint8_t type, uint8_t flags, uint32_t sample_index,
                    const uint8_t *payload, size_t len, uint8_t *out, size_t cap)
{
    proto_header_t h = {
        .major = PROTO_MAJOR,
        .minor = PROTO_MINOR,
        .type = type,
        .flags = flags,
        .seq = f->seq,
        .sample_index = sample_index,
        .length = (uint16_t)len,
    };
    size_t n = proto_encode_frame(out, cap, &h, payload, len);
    if (n > 0) {
        f->seq++;
    }
    return n;
}

size_t framer_pcm(framer_t *f, const int16_t *pcm, size_t n, uint32_t sample_index,
                  uint8_t flags, uint8_t *out, size_t cap)
{
    if (n == 0 || 2 * n > PROTO_MAX_PAYLOAD || cap < PROTO_OVERHEAD + 2 * n) {
        return 0;
    }
    /* Serialise in place after the header so no second buffer is needed. */
    uint8_t *payload = out + PROTO_HEADER_SIZE;
    for (size_t i = 0; i < n; i++) {
        uint16_t v = (uint16_t)pcm[i];
        payload[2 * i] = (uint8_t)v;
        payload[2 * i + 1] = (uint8_t)(v >> 8);
    }
    return framer_frame(f, PROTO_AUDIO_PCM16, flags, sample_index, payload, 2 * n, out, cap);
}

size_t framer_adpcm(framer_t *f, const int16_t *pcm, size_t n, uint32_t sample_index,
                    uint8_t flags, uint8_t *out, size_t cap)
{
    size_t len = PROTO_ADPCM_HEADER_SIZE + n / 2;
    if (n < 2 || (n & 1u) || len > PROTO_MAX_PAYLOAD || cap < PROTO_OVERHEAD + len) {
        return 0;
    }
    uint8_t *payload = out + PROTO_HEADER_SIZE;
    proto_pack_adpcm_header(f->adpcm.predictor, f->adpcm.step_index, payload);
    adpcm_encode(&f->adpcm, pcm, n, payload + PROTO_ADPCM_HEADER_SIZE);
    return framer_frame(f, PROTO_AUDIO_ADPCM, flags, sample_index, payload, len, out, cap);
}
