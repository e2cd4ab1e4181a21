"""Audio reading limits (spkid.kaldi.audio): implausible sample rates and absurd lengths are refused per
utterance, naming it and its file, before anything is resampled, in every command and the Python API."""
from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf
from conftest import tiny_ge2e_checkpoint

from spkid.errors import SpkidError
from spkid.kaldi import audio
from spkid.kaldi.audio import AudioError, SampleRateError, read_audio, resample
from spkid.kaldi.io import read_dict

ULIMIT = "ulimit -v 4000000; "  # 4 GB of address space: resampling the 1 Hz file would need more


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return tiny_ge2e_checkpoint(tmp_path_factory.mktemp("model"))


@pytest.fixture
def mixed_scp(tmp_path):
    """wav.scp: a good 16 kHz file, a 40 KB file whose header says 1 Hz (bug 3), another good one."""
    wave = (0.1 * np.random.default_rng(0).standard_normal(20000)).astype(np.float32)
    sf.write(tmp_path / "good.wav", wave, 16000)
    sf.write(tmp_path / "rate1.wav", wave, 1)
    (tmp_path / "wav.scp").write_text(f"a {tmp_path}/good.wav\nb {tmp_path}/rate1.wav\nc {tmp_path}/good.wav\n")
    return tmp_path / "wav.scp"


def test_implausible_rates_are_refused_before_resampling():
    x = np.zeros(16000, np.float32)
    for rate_in, rate_out in ((1, 16000), (16, 16000), (0, 16000), (16000, 1), (500000, 16000), (16000.5, 16000)):
        with pytest.raises(SampleRateError, match=r"is outside the 4000\.\.384000 Hz"):
            resample(x, rate_in, rate_out)
    assert len(resample(x, 8000, 16000)) == 32000 and len(resample(x, 48000, 16000)) == 5334


def test_a_header_saying_1_hz_is_refused_at_read_time_naming_the_file(tmp_path):
    sf.write(tmp_path / "rate1.wav", np.zeros(2000, np.float32), 1)
    with pytest.raises(SampleRateError, match=re.escape(f"'{tmp_path}/rate1.wav': sample rate 1 Hz is outside")):
        read_audio(str(tmp_path / "rate1.wav"))
    with pytest.raises(AudioError, match="sample rate 1 Hz"):
        read_audio(f"cat {tmp_path}/rate1.wav |")


def test_a_recording_longer_than_the_bound_is_refused_from_its_header(tmp_path, monkeypatch):
    sf.write(tmp_path / "long.wav", np.zeros(16000, np.float32), 16000)
    monkeypatch.setattr(audio, "MAX_RECORDING_SAMPLES", 15999)
    with pytest.raises(AudioError, match=r"long.wav': 16000 samples \(0.0 hours at 16000 Hz\) are more than spkid "
                                         r"reads from one recording \(15999.*cut it into shorter files"):
        read_audio(str(tmp_path / "long.wav"))
    with pytest.raises(AudioError, match="the resampled audio: 32000 samples"):
        resample(np.zeros(8000, np.float32), 8000, 32000)


def test_extract_embeddings_refuses_the_1_hz_file_and_writes_the_others(run, mixed_scp, tiny_model, tmp_path):
    out = tmp_path / "emb"
    proc = run(["bash", "-c", ULIMIT + f"spkid extract-embeddings --model {tiny_model} --scp {mixed_scp} "
                f"--num-workers 0 --output ark,scp:{out}.ark,{out}.scp"], check=False, text=True)
    err = proc.stderr
    assert proc.returncode == 1 and "Traceback" not in err and "MemoryError" not in err, err
    assert re.search(rf"utterance b: {mixed_scp}:2: '{mixed_scp.parent}/rate1.wav': sample rate 1 Hz is outside", err)
    assert list(read_dict(f"scp:{out}.scp")) == ["a", "c"]


def test_compute_fbank_resample_to_refuses_the_1_hz_file_and_a_bad_target(run, mixed_scp, tmp_path):
    feats = tmp_path / "f"
    proc = run(["bash", "-c", ULIMIT + f"spkid compute-fbank --dither=0 --resample-to=16000 scp:{mixed_scp} "
                f"ark,scp:{feats}.ark,{feats}.scp"], check=False, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "utterance b:" in proc.stderr and "sample rate 1 Hz" in proc.stderr
    assert list(read_dict(f"scp:{feats}.scp")) == ["a", "c"]
    proc = run(["spkid", "compute-fbank", "--dither=0", "--resample-to=400000", f"scp:{mixed_scp}",
                f"ark:{feats}2.ark"], check=False, text=True)
    assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1] == (
        "Error: --resample-to=400000: sample rate 400000 Hz is outside the 4000..384000 Hz spkid accepts "
        "(a broken header, or kHz given for Hz?)"), proc.stderr


def test_api_refuses_khz_given_for_hz(tiny_model):
    import spkid

    model = spkid.load_model(tiny_model, device="cpu")
    with pytest.raises(SpkidError, match=r"sample rate 16 Hz is outside the 4000\.\.384000 Hz"):
        model.embed(np.zeros(96000, np.float32), sample_rate=16)
    with pytest.raises(SpkidError, match="sample rate 0 Hz"):
        model.embed(np.zeros(96000, np.float32), sample_rate=0)
