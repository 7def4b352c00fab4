"""The product's own signal chain, applied to clean test audio for robustness benchmarks.

Conditions (``steth-bench --condition NAME``):

- ``afe``: the analog front end's response. A documented stand-in until measured boards
  exist: the corners that the ngspice simulation of ``hardware/spice/frontend.cir`` reports
  (high-pass about 30 Hz, 6th-order Butterworth low-pass about 2.43 kHz), as digital
  Butterworth filters at the recording's rate.
- ``q12``: 12-bit quantisation (the STM32F405 ADC).
- ``adpcm``: an IMA-ADPCM round trip through the wire protocol's codec, frame by frame, each
  frame starting from its own predictor and step index as on the BLE link.
- ``gain+12`` / ``gain-12``: ±12 dB gain, clipped at full scale.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import signal

AFE_HIGHPASS_HZ = 30.4  # hardware/afe_sim.py, nominal
AFE_LOWPASS_HZ = 2434.0
ADPCM_FRAME_SAMPLES = 256


def afe_response(audio: np.ndarray, rate: int) -> np.ndarray:
    low = min(AFE_LOWPASS_HZ, 0.45 * rate)
    sos = np.vstack([signal.butter(2, AFE_HIGHPASS_HZ, "highpass", fs=rate, output="sos"),
                     signal.butter(6, low, "lowpass", fs=rate, output="sos")])
    return signal.sosfilt(sos, audio)


def quantise_bits(audio: np.ndarray, bits: int = 12) -> np.ndarray:
    levels = 2 ** (bits - 1)
    return np.clip(np.round(audio * levels), -levels, levels - 1) / levels


def adpcm_round_trip(audio: np.ndarray, frame: int = ADPCM_FRAME_SAMPLES) -> np.ndarray:
    from steth.edge.protocol import AdpcmState, adpcm_decode, adpcm_encode

    pcm = np.clip(np.round(audio * 32767), -32768, 32767).astype(np.int16)
    out = np.empty_like(pcm)
    state = AdpcmState()
    for start in range(0, pcm.size - pcm.size % 2, frame):
        block = pcm[start:start + frame]
        block = block[:block.size - block.size % 2]
        # Each frame carries the encoder state it starts from, so decoding uses it too.
        first = AdpcmState(state.predictor, state.step_index)
        packed, state = adpcm_encode(block, first)
        out[start:start + block.size], _ = adpcm_decode(packed, first)
    if pcm.size % 2:
        out[-1] = pcm[-1]
    return out.astype(np.float64) / 32768.0


def gain_db(db: float) -> Callable[[np.ndarray, int], np.ndarray]:
    def apply(audio: np.ndarray, rate: int) -> np.ndarray:
        return np.clip(audio * 10.0 ** (db / 20.0), -1.0, 1.0)
    return apply


CONDITIONS: dict[str, Callable[[np.ndarray, int], np.ndarray] | None] = {
    "clean": None,
    "afe": afe_response,
    "q12": lambda audio, rate: quantise_bits(audio, 12),
    "adpcm": lambda audio, rate: adpcm_round_trip(audio),
    "gain+12": gain_db(12.0),
    "gain-12": gain_db(-12.0),
}
