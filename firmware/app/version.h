/* Firmware version, reported in DEVICE_INFO (docs/protocol.md section 4.1). */
#ifndef VERSION_H
#define VERSION_H

#define FW_VERSION_MAJOR 1u
#define FW_VERSION_MINOR 0u
#define FW_VERSION_PATCH 0u

#endif
