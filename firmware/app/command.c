#include "command.h"

static const uint8_t valid_gains[] = {1, 2, 4, 5, 8, 10, 16, 32};

bool command_gain_valid(uint8_t gain)
{
    for (size_t i = 0; i < sizeof valid_gains; i++) {
        if (valid_gains[i] == gain) {
            return true;
        }
    }
    return false;
}

static uint8_t run(device_settings_t *s, const proto_command_t *cmd, command_outcome_t *out)
{
    switch (cmd->opcode) {
    case PROTO_OP_START:
        if (cmd->arg != PROTO_CODEC_PCM16 && cmd->arg != PROTO_CODEC_ADPCM) {
            return PROTO_ACK_BAD_ARGUMENT;
        }
        s->codec = cmd->arg;
        s->streaming = true;
        out->stream_started = true;
        out->send_info = true;
        return PROTO_ACK_OK;
    case PROTO_OP_STOP:
        out->stream_stopped = s->streaming;
        s->streaming = false;
        return PROTO_ACK_OK;
    case PROTO_OP_SET_GAIN:
        if (!command_gain_valid(cmd->arg)) {
            return PROTO_ACK_BAD_ARGUMENT;
        }
        s->gain = cmd->arg;
        out->apply_gain = true;
        return PROTO_ACK_OK;
    case PROTO_OP_PING:
        return PROTO_ACK_OK;
    case PROTO_OP_GET_INFO:
        out->send_info = true;
        return PROTO_ACK_OK;
    default:
        return PROTO_ACK_UNKNOWN_OPCODE;
    }
}

command_outcome_t command_execute(device_settings_t *settings, uint16_t command_seq,
                                  const uint8_t *payload, size_t len)
{
    command_outcome_t out = {0};
    out.ack.command_seq = command_seq;
    proto_command_t cmd;
    if (!proto_unpack_command(payload, len, &cmd)) {
        out.ack.opcode = len > 0 ? payload[0] : 0;
        out.ack.result = PROTO_ACK_BAD_LENGTH;
        return out;
    }
    out.ack.opcode = cmd.opcode;
    out.ack.cookie = cmd.cookie;
    out.ack.result = run(settings, &cmd, &out);
    return out;
}
