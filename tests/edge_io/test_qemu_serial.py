"""The QEMU-emulated firmware, read through the serial transport and the decoder.

Mandatory under CI=true (``require_tool``): this is the end-to-end check that the C framer
and the Python decoder agree on a live byte stream over a real pty.
"""

from __future__ import annotations

import time

import numpy as np
from edge_io_support import REPO_ROOT, audio_of, gaps_of, load_by_path, require_tool

from steth.edge import protocol
from steth.edge.decode import StreamDecoder
from steth.edge.runner import run_decoder_only
from steth.edge.transports.serial_link import SerialTransport
from steth.edge.transports.simulated import is_simulated_device

DEVICE_SECONDS = 3  # of device audio to receive


def qemu_image():
    qemu = load_by_path("_edge_io_qemu", REPO_ROOT / "tests" / "firmware" / "qemu.py")
    if not qemu.QEMU_ELF.is_file():
        require_tool("arm-none-eabi-gcc")
        qemu.build_qemu_image()
    return qemu


def test_qemu_firmware_streams_through_serial_transport_without_crc_errors() -> None:
    qemu_binary = require_tool("qemu-system-arm")
    qemu = qemu_image()
    messages: list[str] = []
    with qemu.boot_qemu(qemu.QEMU_ELF, qemu=qemu_binary) as pty:
        transport = SerialTransport(pty, on_message=messages.append)
        decoder = StreamDecoder()
        try:
            items: list = []
            crc_before_sync = None  # opening the port flushes input, possibly mid-frame
            at_sync = 0
            deadline = time.monotonic() + 60
            wanted = DEVICE_SECONDS * protocol.NOMINAL_SAMPLE_RATE_HZ
            while time.monotonic() < deadline and decoder.stats().audio_samples < wanted:
                request = decoder.device_info_request(time.monotonic())
                if request is not None:
                    transport.write(request)  # the boot DeviceInfo may have been flushed
                new = decoder.feed(transport.read(0.05), time.monotonic())
                if crc_before_sync is None and audio_of(new):
                    crc_before_sync = decoder.stats().crc_errors
                    at_sync = len(items)
                items += new
            cookie = 0xC0FFEE
            transport.write(protocol.encode_message(protocol.Command.ping(cookie), seq=100))
            items += run_decoder_only(transport, decoder, 1.0)
        finally:
            transport.close()
    stats = decoder.stats()
    assert crc_before_sync is not None, f"no audio from the QEMU firmware; {stats}"
    info = decoder.device_info
    assert info is not None and not is_simulated_device(info)
    assert info.sample_rate_hz == 8000 and info.codec == protocol.Codec.PCM16
    assert info.sensor_type == protocol.SensorType.PIEZO_CONTACT
    chunks = audio_of(items[at_sync:])
    assert sum(c.samples.size for c in chunks) >= DEVICE_SECONDS * 8000
    assert {c.samples.size for c in chunks} == {info.frame_samples}
    # From the first trusted frame on: not one CRC error, gap or lost frame.
    assert stats.crc_errors == crc_before_sync
    assert not gaps_of(items[at_sync:]) and stats.lost_frames == 0
    assert any(isinstance(i, protocol.Ack) and i.cookie == cookie for i in items)
    assert np.ptp(np.concatenate([c.samples for c in chunks])) > 0  # not a flat line
    assert stats.device_tx_drops == 0 and stats.device_adc_overruns == 0
    assert not messages  # the port opened first time, nothing to complain about
