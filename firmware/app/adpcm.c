#include "adpcm.h"

static const int16_t step_table[89] = {
    7,     8,     9,     10,    11,    12,    13,    14,    16,    17,    19,    21,    23,
    25,    28,    31,    34,    37,    41,    45,    50,    55,    60,    66,    73,    80,
    88,    97,    107,   118,   130,   143,   157,   173,   190,   209,   230,   253,   279,
    307,   337,   371,   408,   449,   494,   544,   598,   658,   724,   796,   876,   963,
    1060,  1166,  1282,  1411,  1552,  1707,  1878,  2066,  2272,  2499,  2749,  3024,  3327,
    3660,  4026,  4428,  4871,  5358,  5894,  6484,  7132,  7845,  8630,  9493,  10442, 11487,
    12635, 13899, 15289, 16818, 18500, 20350, 22385, 24623, 27086, 29794, 32767,
};
static const int8_t index_table[8] = {-1, -1, -1, -1, 2, 4, 6, 8};

/* One code applied to the state; shared by encoder and decoder so they never diverge. */
static int16_t step_state(adpcm_state_t *st, uint8_t code)
{
    int32_t step = step_table[st->step_index];
    int32_t delta = step >> 3;
    if (code & 4u) {
        delta += step;
    }
    if (code & 2u) {
        delta += step >> 1;
    }
    if (code & 1u) {
        delta += step >> 2;
    }
    int32_t p = st->predictor + ((code & 8u) ? -delta : delta);
    p = p > 32767 ? 32767 : (p < -32768 ? -32768 : p);
    int32_t idx = (int32_t)st->step_index + index_table[code & 7u];
    idx = idx < 0 ? 0 : (idx > 88 ? 88 : idx);
    st->predictor = (int16_t)p;
    st->step_index = (uint8_t)idx;
    return st->predictor;
}

static uint8_t quantise(int32_t diff, int32_t step)
{
    uint8_t code = 0;
    if (diff < 0) {
        code = 8;
        diff = -diff;
    }
    if (diff >= step) {
        code |= 4u;
        diff -= step;
    }
    step >>= 1;
    if (diff >= step) {
        code |= 2u;
        diff -= step;
    }
    step >>= 1;
    if (diff >= step) {
        code |= 1u;
    }
    return code;
}

static uint8_t encode_one(adpcm_state_t *st, int16_t sample)
{
    uint8_t code = quantise((int32_t)sample - st->predictor, step_table[st->step_index]);
    (void)step_state(st, code);
    return code;
}

void adpcm_encode(adpcm_state_t *st, const int16_t *in, size_t n, uint8_t *out)
{
    for (size_t i = 0; i + 1 < n; i += 2) {
        uint8_t lo = encode_one(st, in[i]);
        uint8_t hi = encode_one(st, in[i + 1]);
        out[i / 2] = (uint8_t)(lo | (hi << 4));
    }
}

void adpcm_decode(adpcm_state_t *st, const uint8_t *in, size_t nbytes, int16_t *out)
{
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = step_state(st, in[i] & 0x0Fu);
        out[2 * i + 1] = step_state(st, (uint8_t)(in[i] >> 4));
    }
}
