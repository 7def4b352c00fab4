/* Command parser: validates a COMMAND payload against the device settings and says what the
 * application must do. Pure logic; the hardware side effects are the caller's. */
#ifndef COMMAND_H
#define COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

typedef struct {
    bool streaming;
    uint8_t codec;
    uint8_t gain;
} device_settings_t;

typedef struct {
    proto_ack_t ack;
    bool apply_gain;     /* program the PGA with settings->gain */
    bool send_info;      /* DEVICE_INFO follows the ACK */
    bool stream_started; /* START accepted: next audio frame carries STREAM_START */
    bool stream_stopped; /* STOP accepted: flush, then no audio after the ACK */
} command_outcome_t;

bool command_gain_valid(uint8_t gain);
/* Applies one COMMAND frame's payload to the settings. Rejected commands change nothing. */
command_outcome_t command_execute(device_settings_t *settings, uint16_t command_seq,
                                  const uint8_t *payload, size_t len);

#endif
