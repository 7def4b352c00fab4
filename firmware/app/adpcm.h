/* IMA-ADPCM (IMA DAFTWG 1992), packed two codes per byte, low nibble first. */
#ifndef ADPCM_H
#define ADPCM_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int16_t predictor;
    uint8_t step_index; /* 0..88 */
} adpcm_state_t;

/* Encodes n samples (n even) into n/2 bytes, updating the state. */
void adpcm_encode(adpcm_state_t *st, const int16_t *in, size_t n, uint8_t *out);
/* Decodes nbytes bytes into 2*nbytes samples, updating the state. The state must be valid
 * (step_index <= 88): callers check received headers with proto_unpack_adpcm_header. */
void adpcm_decode(adpcm_state_t *st, const uint8_t *in, size_t nbytes, int16_t *out);

#endif
