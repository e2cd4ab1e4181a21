"""steps/make_fbank.sh and steps/compute_vad_decision.sh on real speech, as a Kaldi recipe runs them."""
from __future__ import annotations

import pytest
from conftest import make_real_dir

from spkid.kaldi.tables import read_text_table
from spkid.kaldi.validate import check_data_dir

FBANK_CONF = "--sample-frequency=16000\n--num-mel-bins=40\n--dither=0\n--use-energy=true\n"


@pytest.fixture
def recipe(tmp_path, shared_data):
    """A recipe dir: conf/, data/train (14 speakers, 2 utterances each) and its list of 6 speakers."""
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "fbank.conf").write_text(FBANK_CONF)
    (tmp_path / "conf" / "vad.conf").write_text("--vad-energy-threshold=5.5\n--vad-energy-mean-scale=0.5\n")
    data = make_real_dir(tmp_path / "data" / "train", shared_data, per_spk=2)
    utts = read_text_table(data / "utt2spk")
    keep = {u for u in utts if u.startswith(("p2", "1688", "1998"))}
    (data / "keep").write_text("".join(f"{u}\n" for u in sorted(keep)))
    return tmp_path


def _subset(run, recipe):
    run(["subset_data_dir.sh", "--utt-list", "data/train/keep", "data/train", "data/small"], cwd=recipe)
    return recipe / "data" / "small"


def test_make_fbank_and_vad(run, recipe):
    data = _subset(run, recipe)
    out = run(["make_fbank.sh", "--nj", "3", "--cmd", "run.pl --max-jobs-run 2", "data/small",
               "exp/make_fbank/small", "fbank"], cwd=recipe)
    assert b"Succeeded creating filterbank features for small" in out.stdout
    utts = read_text_table(data / "utt2spk")
    feats = read_text_table(data / "feats.scp")
    frames = read_text_table(data / "utt2num_frames")
    assert list(feats) == list(utts) and list(frames) == list(utts)
    assert all(v.startswith(str(recipe / "fbank" / "raw_fbank_small.")) for v in feats.values())
    assert all(int(n) > 50 for n in frames.values())
    durs = read_text_table(data / "utt2dur")  # 10 ms frames of 25 ms: about 100 frames a second
    assert list(durs) == list(utts) and all(abs(float(durs[u]) * 100 - int(frames[u])) < 3 for u in utts)
    assert [p.name for p in sorted((recipe / "exp" / "make_fbank" / "small").glob("*.log"))] == \
        [f"make_fbank_small.{j}.log" for j in (1, 2, 3)]
    assert check_data_dir(data, no_text=True) == []

    import kaldiio

    mat = kaldiio.load_mat(feats[next(iter(feats))])
    assert mat.shape == (int(frames[next(iter(frames))]), 41)  # 40 mel bins + energy

    out = run(["compute_vad_decision.sh", "--nj", "2", "data/small", "exp/make_vad", "vad"], cwd=recipe)
    assert b"Created VAD output for small" in out.stdout
    vad = read_text_table(data / "vad.scp")
    assert list(vad) == list(utts)
    decisions = kaldiio.load_mat(vad[next(iter(vad))])
    assert decisions.shape == (mat.shape[0],) and 0 < decisions.sum() <= mat.shape[0]
    assert check_data_dir(data, no_text=True) == []


def test_vad_from_audio_aligned_with_fbank_without_energy(run, recipe):
    """--fbank-config: energy from the audio (fbank has no energy column), same frames as the fbank."""
    import kaldiio
    import numpy as np

    data = _subset(run, recipe)
    (recipe / "conf" / "fbank.conf").write_text("--num-mel-bins=40\n--dither=0\n--frame-shift=12\n")
    run(["make_fbank.sh", "--nj", "2", "data/small"], cwd=recipe)
    run(["compute_vad_decision.sh", "--nj", "2", "--fbank-config", "conf/fbank.conf", "data/small"], cwd=recipe)
    feats, vad = read_text_table(data / "feats.scp"), read_text_table(data / "vad.scp")
    assert list(vad) == list(feats)
    for utt in feats:
        mat, dec = kaldiio.load_mat(feats[utt]), kaldiio.load_mat(vad[utt])
        assert mat.shape == (len(dec), 40)
        assert set(np.unique(dec)) <= {0.0, 1.0} and dec.sum() > 0
    assert check_data_dir(data, no_text=True) == []


def test_make_fbank_reports_failed_utterances(run, recipe):
    data = _subset(run, recipe)
    wav = (data / "wav.scp").read_text().splitlines()
    broken = wav[1].split()[0]
    wav[1] = f"{broken} {recipe}/no-such-file.flac"
    (data / "wav.scp").write_text("\n".join(wav) + "\n")
    out = run(["make_fbank.sh", "--nj", "2", "data/small"], cwd=recipe)
    assert b"1 of 12 utterances failed" in out.stdout
    assert b"Succeeded creating filterbank features for small" in out.stdout
    assert broken not in read_text_table(data / "feats.scp") and len(read_text_table(data / "feats.scp")) == 11
    assert (data / "log" / "make_fbank_small.1.log").exists()
    run(["fix_data_dir.sh", "data/small"], cwd=recipe)
    assert check_data_dir(data, no_text=True) == []


def test_make_fbank_fails_when_nothing_computed(run, recipe):
    data = _subset(run, recipe)
    (data / "wav.scp").write_text("".join(f"{u} /nonexistent/{u}.flac\n" for u in read_text_table(data / "utt2spk")))
    out = run(["make_fbank.sh", "--nj", "2", "data/small"], cwd=recipe, check=False)
    assert out.returncode == 1
    assert b"no features were computed for small" in out.stderr
    assert not (data / "feats.scp").exists()


def test_steps_usage_and_invalid_input(run, recipe):
    for script in ("make_fbank.sh", "compute_vad_decision.sh"):
        helped = run([script, "--help"], cwd=recipe)
        assert b"Usage:" in helped.stderr and helped.returncode == 0
        assert run([script], cwd=recipe, check=False).returncode == 1
        assert run([script, "--bogus", "1", "data/train"], cwd=recipe, check=False).returncode == 1
    # an invalid data dir is refused before any job runs
    data = recipe / "data" / "train"
    (data / "utt2spk").write_text((data / "utt2spk").read_text() + "aaa-1 aaa\n")
    out = run(["make_fbank.sh", "data/train"], cwd=recipe, check=False)
    assert out.returncode == 1 and b"utt2spk:29" in out.stderr
    assert not (data / "log").exists()
