/* Framer: turns ADC blocks into AUDIO_PCM16 / AUDIO_ADPCM payloads and wraps any payload in
 * a frame with the device's sequence counter. */
#ifndef FRAMER_H
#define FRAMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adpcm.h"
#include "proto.h"

#define ADC_MIDSCALE 2048
#define ADC_MAX_CODE 4095u
#define PCM_FRAME_SAMPLES 160u
#define ADPCM_FRAME_SAMPLES 320u

typedef struct {
    uint16_t seq;
    adpcm_state_t adpcm; /* encoder state carried across frames */
} framer_t;

void framer_init(framer_t *f);
/* 12-bit code to the wire's 16-bit sample: (code - 2048) * 16. */
int16_t framer_code_to_pcm(uint16_t code);
/* Converts codes to samples; returns how many sat at an ADC rail. */
uint32_t framer_convert(const uint16_t *codes, size_t n, int16_t *pcm);
/* Builds one frame of any type; returns its size (0 if it does not fit in cap). */
size_t framer_frame(framer_t *f, uint8_t type, uint8_t flags, uint32_t sample_index,
                    const uint8_t *payload, size_t len, uint8_t *out, size_t cap);
size_t framer_pcm(framer_t *f, const int16_t *pcm, size_t n, uint32_t sample_index,
                  uint8_t flags, uint8_t *out, size_t cap);
/* Encodes n (even) samples; the payload carries the encoder state before the first. */
size_t framer_adpcm(framer_t *f, const int16_t *pcm, size_t n, uint32_t sample_index,
                    uint8_t flags, uint8_t *out, size_t cap);

#endif
