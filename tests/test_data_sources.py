"""spkid.data.sources.AudioSource: a recording whose audio holds NaN/inf (only seen when decoded, while cropping)
is left out like an undecodable one: crops of another utterance of its speaker stand in, training goes on."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import soundfile as sf

from spkid.errors import SpkidError

FEATURES = {"type": "kaldi-fbank", "num_mel_bins": 24, "dither": 0.0, "sample_frequency": 16000.0}


def noise(seed: int, seconds: float = 1.0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(16000 * seconds))).astype(np.float32)


@pytest.fixture
def data_dir(tmp_path):
    """Speaker a: a1, a2 (NaN), a3; speaker b: b1 (NaN) only."""
    rows = []
    for utt, spk, nan in (("a1", "a", False), ("a2", "a", True), ("a3", "a", False), ("b1", "b", True)):
        wave = noise(len(rows))
        if nan:
            wave[4000] = np.nan
        sf.write(tmp_path / f"{utt}.wav", wave, 16000, subtype="FLOAT")
        rows.append((utt, spk))
    (tmp_path / "wav.scp").write_text("".join(f"{u} {tmp_path}/{u}.wav\n" for u, _ in rows))
    (tmp_path / "utt2spk").write_text("".join(f"{u} {s}\n" for u, s in rows))
    return tmp_path


def test_a_nan_recording_is_left_out_and_another_of_its_speaker_cropped(data_dir, caplog):
    from spkid.data.sources import open_source

    src = open_source(data_dir, FEATURES, source="audio")
    a2, a3 = src.utts.index("a2"), src.utts.index("a3")
    with caplog.at_level(logging.WARNING, logger="spkid"):
        first = src.crop(a2, 0, 50)
        again = src.crop(a2, 0, 50)
    assert np.isfinite(first).all() and first.shape == (50, 24)
    assert np.array_equal(first, again) and np.array_equal(first, src.crop(a3, 0, 50))  # a3 stands in
    assert caplog.text.count("utterance a2 left out: its audio has non-finite samples") == 1, caplog.text
    with pytest.raises(SpkidError, match="utterance b1: audio has non-finite samples .* all the other utterances "
                                         "of speaker b"):
        src.crop(src.utts.index("b1"), 0, 50)


def test_on_the_fly_training_goes_on_past_a_nan_recording(data_dir, run, tmp_path):
    """UX 6: training stopped at the first NaN recording it drew."""
    import shutil

    for utt, seed in (("b2", 7), ("b3", 8), ("a4", 9)):
        sf.write(data_dir / f"{utt}.wav", noise(seed), 16000, subtype="FLOAT")
    (data_dir / "b1.wav").unlink()
    shutil.copy(data_dir / "a2.wav", data_dir / "b1.wav")
    wav = "".join(f"{u} {data_dir}/{u}.wav\n" for u in ("a1", "a2", "a3", "a4", "b1", "b2", "b3"))
    (data_dir / "wav.scp").write_text(wav)
    (data_dir / "utt2spk").write_text("".join(f"{u} {u[0]}\n" for u in ("a1", "a2", "a3", "a4", "b1", "b2", "b3")))
    opts = ["task", "ge2e", "train.max_steps", "3", "model.args.hidden_size", "16", "model.args.embed_dim", "8",
            "model.args.num_layers", "1", "data.speakers_per_batch", "2", "data.utterances_per_speaker", "3",
            "data.crop_frames", "40", "data.num_workers", "0", "features.num_mel_bins", "24"]
    proc = run(["spkid", "train", "--data", str(data_dir), "--output", str(tmp_path / "exp"), "--opts", *opts],
               check=False, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "left out: its audio has non-finite samples" in proc.stderr


def test_a_recording_with_an_implausible_rate_is_left_out_of_training(data_dir, caplog):
    """Bug 3 for training: lhotse would resample a header saying 1 Hz to the front-end's rate (GBs)."""
    from spkid.data.lhotse_bridge import data_dir_to_cuts

    sf.write(data_dir / "a2.wav", noise(3, 0.5), 1)
    with caplog.at_level(logging.WARNING, logger="spkid"):
        cuts = data_dir_to_cuts(data_dir, 16000)
    assert sorted(c.id for c in cuts) == ["a1", "a3", "b1"]
    assert "recording a2 skipped" in caplog.text and "sample rate 1 Hz is outside" in caplog.text, caplog.text
