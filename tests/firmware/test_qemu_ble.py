"""End to end: the BLE build (IMA-ADPCM, paced for the radio) in QEMU.

At the board's pace (6000 B/s) every frame arrives; throttled to 3000 B/s, below the
ADPCM rate of 4588 B/s, the line is used at exactly the paced rate and the device drops
whole frames: every frame that arrives is intact and decodes on its own.
"""

from __future__ import annotations

import itertools
import os
import time
import tty

import numpy as np
import pytest
from device_link import DeviceLink, qemu_source
from qemu import boot_qemu, build_qemu_image

from steth.edge import protocol as p
from tests.conftest import require_tool

pytestmark = pytest.mark.timeout(300)
DEVICE_SECONDS = 4


def stream(variant: str, device_seconds: int) -> tuple[DeviceLink, float]:
    require_tool("make")
    require_tool("arm-none-eabi-gcc")
    require_tool("qemu-system-arm")
    elf = build_qemu_image(variant=variant)
    with boot_qemu(elf) as pty:
        fd = os.open(pty, os.O_RDWR | os.O_NOCTTY)
        tty.setraw(fd)
        try:
            link = DeviceLink(fd)
            started = time.monotonic()
            link.status_after(device_seconds * 8000)
            return link, time.monotonic() - started
        finally:
            os.close(fd)


def check_adpcm_frames_decode_alone(frames: list[p.Frame]) -> int:
    """Each ADPCM frame equals the C encoder's output for the known source; returns the
    number of frames checked."""
    adpcm = [f for f in frames if f.msg_type == p.MsgType.AUDIO_ADPCM]
    for frame in adpcm:
        block = frame.message()
        assert isinstance(block, p.AudioAdpcm)
        source = qemu_source(frame.sample_index, block.sample_count, gain=8)
        state = p.AdpcmState(block.predictor, block.step_index)
        assert p.adpcm_encode(source, state)[0] == block.data
    return len(adpcm)


def bytes_per_device_second(link: DeviceLink, from_index: int = 0) -> float:
    """Bytes queued per second of device time between the first STATUS at or after
    ``from_index`` and the last one received. Once the transmit queue is full, what gets
    queued is exactly what the paced line carries."""
    frames = link.frames
    statuses = [
        i
        for i, f in enumerate(frames)
        if f.msg_type == p.MsgType.STATUS and f.sample_index >= from_index
    ]
    first, last = statuses[0], statuses[-1]
    sent = sum(f.size for f in frames[first + 1 : last + 1])
    elapsed_us = frames[last].message().uptime_us - frames[first].message().uptime_us
    return sent / (elapsed_us / 1e6)


def test_ble_build_streams_adpcm_without_loss() -> None:
    link, wall = stream("qemu-ble", DEVICE_SECONDS)
    frames = link.frames
    assert not [e for e in link.events if not isinstance(e, p.Frame)]
    assert [f.seq for f in frames] == list(range(len(frames)))
    info = frames[0].message()
    assert isinstance(info, p.DeviceInfo)
    assert info.link == p.Link.BLE and info.codec == p.Codec.IMA_ADPCM
    assert info.frame_samples == 320 and info.gain == 8
    adpcm = [f for f in frames if f.msg_type == p.MsgType.AUDIO_ADPCM]
    assert [f.sample_index for f in adpcm] == [320 * k for k in range(len(adpcm))]
    assert check_adpcm_frames_decode_alone(frames) >= DEVICE_SECONDS * 25
    assert all(f.message().tx_drops == 0 for f in frames if f.msg_type == p.MsgType.STATUS)
    rate = bytes_per_device_second(link)
    assert abs(rate - (25 * 182 + 38)) < 0.02 * 4588, rate
    print(f"\nBLE build: {rate:.0f} B/s of 6000 paced, no drops ({wall:.1f} s wall)")


def test_ble_build_paced_below_the_stream_rate_drops_whole_frames() -> None:
    # 4096 B of queue fill at 4588 - 3000 B/s take 2.6 s; measure from 4 s to 9 s.
    link, wall = stream("qemu-ble-3000", 9)
    frames = link.frames
    assert not [e for e in link.events if not isinstance(e, p.Frame)], "torn or corrupt frame"
    drops = max(f.message().tx_drops for f in frames if f.msg_type == p.MsgType.STATUS)
    lost = sum(p.seq_delta(a.seq, b.seq) - 1 for a, b in itertools.pairwise(frames))
    assert drops > 0 and lost > 0
    rate = bytes_per_device_second(link, from_index=4 * 8000)
    assert abs(rate - 3000) < 0.05 * 3000, rate  # the pace, not the 4588 B/s produced
    assert check_adpcm_frames_decode_alone(frames) > 0
    error = np.abs(
        np.concatenate(
            [
                f.message().samples().astype(np.int32)
                - qemu_source(f.sample_index, f.message().sample_count, gain=8)
                for f in frames
                if f.msg_type == p.MsgType.AUDIO_ADPCM
            ]
        )
    )
    assert np.median(error) <= 8  # frames after a drop decode as well as the others
    print(
        f"\nBLE build paced at 3000 B/s: {rate:.0f} B/s on the line, {drops} frames dropped "
        f"whole by the device, {lost} seq gaps, 0 CRC errors ({wall:.1f} s wall)"
    )
