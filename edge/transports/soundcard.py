"""Sound-card input (sounddevice) for stethoscopes that appear as USB audio devices.

Blocks from the PortAudio callback are framed into protocol PCM16 frames, so the same
decoder, gap detection and link statistics apply as for the serial device. An input
overflow is turned into a sample-index jump (measured from the ADC timestamps), which the
decoder reports as a ``device_dropped`` gap instead of silently closing it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from steth.edge import protocol
from steth.edge.protocol import NOMINAL_SAMPLE_RATE_HZ
from steth.edge.transports.base import (
    ByteQueue,
    MessageSink,
    SourceError,
    Transport,
    TransportStatus,
    print_to_stderr,
)
from steth.edge.transports.framing import CommandResponder, PcmStreamFramer, host_device_info

BLOCK_SAMPLES = 128  # one protocol frame per callback, 16 ms at 8 kHz


def import_sounddevice() -> Any:
    """Import sounddevice, turning a missing package or PortAudio into a one-line error."""
    try:
        import sounddevice
    except ImportError as error:
        raise SourceError(
            "sound-card input needs sounddevice: pip install 'lungsound-steth[audio]'"
        ) from error
    except OSError as error:
        raise SourceError(
            "sound-card input needs the PortAudio library: sudo apt-get install libportaudio2"
        ) from error
    return sounddevice


def parse_device(device: str | int | None) -> str | int | None:
    """``--soundcard`` value to a sounddevice device: index, name substring or default."""
    if device is None or device == "default":
        return None
    if isinstance(device, int):
        return device
    return int(device) if device.strip().isdigit() else device


class SoundCardTransport(Transport):
    """Record from an audio input and deliver protocol bytes.

    Parameters
    ----------
    device : str, int or None
        Input device index or name (None: the system default input).
    sample_rate : int
        Capture rate; the stethoscope pipeline expects the device nominal 8 kHz.
    on_message : callable
        One-line messages (overflow warnings).
    sounddevice_module : module-like, optional
        Provides ``InputStream`` (and ``PortAudioError``); injectable for tests.
    """

    def __init__(
        self,
        device: str | int | None = None,
        *,
        sample_rate: int = NOMINAL_SAMPLE_RATE_HZ,
        on_message: MessageSink = print_to_stderr,
        sounddevice_module: Any = None,
    ) -> None:
        sd = sounddevice_module or import_sounddevice()
        self.device = parse_device(device)
        self.sample_rate = sample_rate
        self.name = f"sound card {self.device if self.device is not None else 'default'}"
        self._on_message = on_message
        device_id = protocol.crc(str(self.device).encode())
        self._framer = PcmStreamFramer(host_device_info(device_id, sample_rate))
        self._responder = CommandResponder(self._framer)
        self._queue = ByteQueue()
        self._queue.put(self._framer.start())
        self._next_adc_time: float | None = None
        self.overflows = 0
        self.lost_samples = 0
        try:
            self._stream = sd.InputStream(
                samplerate=sample_rate, channels=1, dtype="int16", device=self.device,
                blocksize=BLOCK_SAMPLES, callback=self._on_block,
            )  # fmt: skip
            self._stream.start()
        except (getattr(sd, "PortAudioError", OSError), ValueError) as error:
            detail = " ".join(str(error).split())
            raise SourceError(
                f"cannot record from {self.name} at {sample_rate} Hz mono ({detail}): pick "
                "another --soundcard device (python -m sounddevice lists them)"
            ) from error

    def read(self, timeout: float) -> bytes:
        """Framed audio recorded so far (waits up to ``timeout`` s)."""
        return self._queue.get(timeout)

    def write(self, data: bytes) -> None:
        """Commands are answered locally (ACK, DeviceInfo), as a device would."""
        self._queue.put(self._responder.feed(data))

    def close(self) -> None:
        """Stop and close the input stream."""
        stream, self._stream = self._stream, None
        if stream is not None:
            stream.stop()
            stream.close()

    def status(self) -> TransportStatus:
        """Always connected once open; overflow losses show up as decoder gaps."""
        return TransportStatus(connected=self._stream is not None, dropped_bytes=0)

    def _on_block(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio callback thread: keep it short, never raise.
        adc_time = float(getattr(time_info, "inputBufferAdcTime", 0.0) or 0.0)
        if status and getattr(status, "input_overflow", False):
            self.overflows += 1
            if self.overflows == 1:
                self._on_message(
                    f"{self.name} overflowed: samples were lost (shown as gaps); close other "
                    "audio programs or reduce CPU load"
                )
            self._account_for_overflow(adc_time)
        if adc_time:
            self._next_adc_time = adc_time + frames / self.sample_rate
        if not self._responder.streaming:
            self._queue.put(b"".join(self._framer.idle(frames)))
            return
        samples = np.asarray(indata, dtype=np.int16).reshape(-1)[:frames]
        self._queue.put(b"".join(self._framer.audio(samples)))

    def _account_for_overflow(self, adc_time: float) -> None:
        """Advance the sample index by what the overflow swallowed (from ADC timestamps)."""
        if self._next_adc_time is None or not adc_time:
            return
        lost = round((adc_time - self._next_adc_time) * self.sample_rate)
        if lost > 0:
            # Partial frames cannot straddle a hole: send what is buffered first.
            self._queue.put(b"".join(self._framer.flush()))
            self._framer.skip_samples(lost)
            self.lost_samples += lost
