"""Loaders on the real files, and on the official ICBHI download layout."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from steth.models.data import split_train_validation
from steth.models.datasets import (
    DataError,
    load_audio,
    load_icbhi,
    load_sprsound,
    parse_icbhi_cycles,
    parse_sprsound_annotation,
)
from tests.conftest import note_loaded


def test_sprsound_official_splits(shared_data):
    train, test = load_sprsound(shared_data, "train"), load_sprsound(shared_data, "test")
    note_loaded("SPRSound", len(train) + len(test))
    assert (len(train), len(test)) == (1949, 734)
    assert sum(r.subset == "inter" for r in test) == 355
    assert sum(r.subset == "intra" for r in test) == 379
    poor = [r for r in train if r.record_label == "Poor Quality"]
    assert len(poor) == 177 and all(not r.events for r in poor)
    events = [e for r in train for e in r.events]
    assert sum(e.label == "Fine Crackle" for e in events) == 912
    assert all(isinstance(e.start, float) and e.end > e.start for e in events)
    audio, rate = load_audio(test[0].audio_path)
    assert rate == 8000 and audio.ndim == 1 and np.abs(audio).max() <= 1.0


def test_icbhi_shared_flac_layout(shared_data):
    recs = load_icbhi(shared_data)
    note_loaded("ICBHI (with audio)", len(recs))
    assert len(recs) == 43 and {r.split for r in recs} == {"train"}
    cycles = [c for r in recs for c in r.events]
    assert len(cycles) == 442
    assert sum(c.label == "Both" for c in cycles) == 17
    rates = {load_audio(r.audio_path)[1] for r in recs}
    assert rates == {4000, 44100}
    everything = load_icbhi(shared_data, require_audio=False)
    assert len(everything) == 920


def test_icbhi_official_download_layout(shared_data, tmp_path):
    """Rebuild the ``ICBHI_final_database/<name>.wav + <name>.txt`` layout from shared files."""
    source = load_icbhi(shared_data)[:3]
    folder = tmp_path / "ICBHI_final_database"
    folder.mkdir()
    lines = []
    for rec in source:
        audio, rate = load_audio(rec.audio_path)
        sf.write(folder / f"{rec.rec_id}.wav", audio, rate, subtype="PCM_16")
        shutil.copy(shared_data / "icbhi2017" / "annotations" / f"{rec.rec_id}.txt", folder)
        lines.append(f"{rec.rec_id}\ttrain")
    (tmp_path / "ICBHI_challenge_train_test.txt").write_text("\n".join(lines) + "\n")
    loaded = load_icbhi(tmp_path)
    assert [r.rec_id for r in loaded] == [r.rec_id for r in source]
    assert [r.events for r in loaded] == [r.events for r in source]
    assert all(r.audio_path.suffix == ".wav" for r in loaded)


def test_patients_156_and_218_are_in_both_official_halves(shared_data):
    recs = load_icbhi(shared_data, require_audio=False)
    both = {r.patient for r in recs if r.split == "train"} & \
        {r.patient for r in recs if r.split == "test"}
    assert both == {"156", "218"}


def test_train_validation_test_patients_do_not_overlap(shared_data):
    train_all = load_sprsound(shared_data, "train") + load_icbhi(shared_data, "train")
    train, val = split_train_validation(train_all, 0.15, seed=0)
    key = lambda r: f"{r.dataset}:{r.patient}"  # noqa: E731
    assert not {key(r) for r in train} & {key(r) for r in val}
    assert len(val) > 100
    inter = [r for r in load_sprsound(shared_data, "test") if r.subset == "inter"]
    assert not {key(r) for r in inter} & {key(r) for r in train_all}


def test_loading_errors_name_the_file(tmp_path):
    bad = tmp_path / "a.json"
    bad.write_text(json.dumps({"record_annotation": "Normal",
                               "event_annotation": [{"start": "10", "end": "5",
                                                     "type": "Normal"}]}))
    with pytest.raises(DataError, match=r"a\.json"):
        parse_sprsound_annotation(bad)
    bad.write_text("{not json")
    with pytest.raises(DataError, match=r"a\.json"):
        parse_sprsound_annotation(bad)
    cycles = tmp_path / "c.txt"
    cycles.write_text("0.1 0.5 0 2\n")
    with pytest.raises(DataError, match=r"c\.txt:1"):
        parse_icbhi_cycles(cycles)
    broken = tmp_path / "x.flac"
    broken.write_bytes(b"not audio")
    with pytest.raises(DataError, match=r"x\.flac"):
        load_audio(broken)
    with pytest.raises(DataError, match="sprsound2022"):
        load_sprsound(tmp_path, "train")
