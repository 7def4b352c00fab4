"""Live listening: the filtered stream to headphones, with volume and a small fixed delay.

:meth:`Listener.feed` never blocks and never raises on the audio path: when the sound card
falls behind, the oldest samples are dropped, so classification is never slowed down.
Playback starts once ``delay_s`` of audio is buffered and keeps that delay; an underrun
plays silence and re-primes.
"""

from __future__ import annotations

import argparse
import threading
from typing import Any

import numpy as np

DEFAULT_DELAY_S = 0.15
MAX_BACKLOG_S = 0.5  # beyond delay + this, the clocks have drifted: drop back to the delay


class NoOutputDeviceError(RuntimeError):
    """Listening is impossible here (one-line message that says what to do)."""


def _load_sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError:
        raise NoOutputDeviceError("live listening needs sounddevice: pip install sounddevice"
                             ) from None
    except OSError:
        raise NoOutputDeviceError("live listening needs the PortAudio library: "
                             "apt-get install libportaudio2") from None
    return sounddevice


class Listener:
    """Play a mono stream to the default (or given) output device.

    Parameters
    ----------
    sample_rate : int
        Rate of the fed samples.
    volume : float
        0 (mute) to 1 (full scale).
    delay_s : float
        Fixed playback delay; it absorbs jitter of the incoming frames.
    device : int or str, optional
        sounddevice output device; the default output otherwise.
    sd : module, optional
        A sounddevice-compatible module (tests inject a fake).
    """

    def __init__(self, sample_rate: int, volume: float = 0.5, delay_s: float = DEFAULT_DELAY_S,
                 device: int | str | None = None, sd: Any = None) -> None:
        self.sample_rate = int(sample_rate)
        self.volume = 0.0
        self.set_volume(volume)
        self.delay = max(1, round(delay_s * sample_rate))
        self._capacity = self.delay + int(MAX_BACKLOG_S * sample_rate)
        self._max_fill = self.delay + int(MAX_BACKLOG_S * sample_rate / 2)
        self._buffer = np.zeros(self._capacity, dtype=np.float32)
        self._fill = 0
        self._primed = False
        self._lock = threading.Lock()
        self._sd = sd
        self._device = device
        self._stream: Any = None
        self.dropped = 0
        self.underruns = 0

    def set_volume(self, volume: float) -> None:
        self.volume = float(min(1.0, max(0.0, volume)))

    def start(self) -> None:
        """Open the output stream; raises :class:`NoOutputDeviceError` with what to do."""
        sd = self._sd or _load_sounddevice()
        try:
            sd.query_devices(self._device, kind="output")
        except Exception:
            raise NoOutputDeviceError("no audio output device found: plug in headphones or a "
                                 "sound card, or run without --listen") from None
        try:
            self._stream = sd.OutputStream(samplerate=self.sample_rate, channels=1,
                                           dtype="float32", device=self._device,
                                           callback=self._callback, latency="low")
            self._stream.start()
        except Exception as exc:
            raise NoOutputDeviceError(f"cannot open the audio output: {exc}") from None

    def feed(self, samples: np.ndarray) -> None:
        """Queue samples (int16 or float in -1..1) for playback; never blocks."""
        data = np.asarray(samples)
        if data.dtype == np.int16:
            data = data.astype(np.float32) / 32768.0
        data = data.astype(np.float32, copy=False).ravel()
        with self._lock:
            overflow = self._fill + data.size - self._capacity
            if overflow > 0:  # keep the newest audio at the fixed delay
                keep = max(0, self._fill - overflow)
                self._buffer[:keep] = self._buffer[self._fill - keep:self._fill]
                self.dropped += self._fill - keep
                self._fill = keep
                data = data[-(self._capacity - self._fill):]
            self._buffer[self._fill:self._fill + data.size] = data
            self._fill += data.size
            if self._primed and self._fill > self._max_fill:
                self._drop_to_delay()

    def _drop_to_delay(self) -> None:
        """Keep only the newest ``delay`` samples (call with the lock held)."""
        excess = self._fill - self.delay
        if excess > 0:
            self._buffer[:self.delay] = self._buffer[excess:self._fill]
            self.dropped += excess
            self._fill = self.delay

    def _callback(self, outdata: np.ndarray, frames: int, time: Any, status: Any) -> None:
        with self._lock:
            if not self._primed and self._fill >= self.delay:
                self._primed = True
                if self._fill > self._max_fill:  # a long backlog would add latency
                    self._drop_to_delay()
            if not self._primed:
                outdata.fill(0)
                return
            n = min(frames, self._fill)
            outdata[:n, 0] = self._buffer[:n] * self.volume
            outdata[n:, 0] = 0
            self._buffer[:self._fill - n] = self._buffer[n:self._fill]
            self._fill -= n
            if n < frames:
                self.underruns += 1
                self._primed = False

    def close(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream.close()
            self._stream = None


def add_listen_arguments(parser: argparse.ArgumentParser) -> None:
    """``--listen``, ``--volume`` and ``--listen-delay`` for edge-run."""
    group = parser.add_argument_group("listening (headphones)")
    group.add_argument("--listen", action="store_true",
                       help="play the filtered stream on the default audio output")
    group.add_argument("--volume", type=float, default=0.5, help="listening volume 0-1")
    group.add_argument("--listen-delay", type=float, default=DEFAULT_DELAY_S, metavar="SECONDS",
                       help=f"fixed playback delay (default {DEFAULT_DELAY_S})")


def open_listener(args: argparse.Namespace, sample_rate: int, sd: Any = None
                  ) -> Listener | None:
    """Start the listener chosen by :func:`add_listen_arguments` (None without ``--listen``).

    Raises
    ------
    NoOutputDeviceError
        With a one-line message (no device, no sounddevice, no PortAudio).
    """
    if not getattr(args, "listen", False):
        return None
    listener = Listener(sample_rate, volume=args.volume, delay_s=args.listen_delay, sd=sd)
    listener.start()
    return listener
