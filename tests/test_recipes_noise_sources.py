"""`spkid prepare musan` and `spkid prepare rirs_noises` on miniature corpora in their real folder layouts
(openslr 17 and 28: file names, ANNOTATIONS, the shipped rir_list/noise_list with `RIRS_NOISES/...` paths), and
the data dirs they make read by steps/data/augment_data_dir.py and reverberate_data_dir.py."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import ROOT, flac_files, write_data_dir

from spkid.cli import main as spkid_main
from spkid.kaldi.tables import read_text_table
from spkid.kaldi.validate import validate_data_dir

AUGMENT = str(ROOT / "steps" / "data" / "augment_data_dir.py")
REVERBERATE = str(ROOT / "steps" / "data" / "reverberate_data_dir.py")
RATE = 16000


def _wav(path, seconds, seed, channels=1):
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = np.random.default_rng(seed).normal(0, 0.1, (int(RATE * seconds), channels))
    sf.write(str(path), wave, RATE, subtype="PCM_16")


def make_musan(root):
    """musan/{noise,music,speech}/<source>/<id>.wav with the ANNOTATIONS files; music-fma-0002 is not annotated."""
    musan = root / "musan"
    for i, (source, seconds) in enumerate((("free-sound", 0.5), ("sound-bible", 0.3))):
        _wav(musan / "noise" / source / f"noise-{source}-0000.wav", seconds, i)
        (musan / "noise" / source / "ANNOTATIONS").write_text(f"noise-{source}-0000 http://example.org\n")
    for i in range(3):
        _wav(musan / "music" / "fma" / f"music-fma-000{i}.wav", 1.0 + i, 10 + i)
    (musan / "music" / "fma" / "ANNOTATIONS").write_text(
        "music-fma-0000 rock Y Some_Band\nmusic-fma-0001 classical,baroque N Some_Composer\n")
    _wav(musan / "speech" / "librivox" / "speech-librivox-0000.wav", 1.5, 20)
    (musan / "speech" / "librivox" / "ANNOTATIONS").write_text("speech-librivox-0000 m english\n")
    (musan / "README").write_text("MUSAN miniature\n")
    return musan


def make_rirs_noises(root):
    """RIRS_NOISES/ as unzipped from rirs_noises.zip, lists with their `RIRS_NOISES/...` relative paths."""
    base = root / "RIRS_NOISES"
    for size in ("small", "medium", "large"):
        lines = []
        for room in (1, 2):
            for k in (1, 2):
                rel = f"simulated_rirs/{size}room/Room00{room}/Room00{room}-0000{k}.wav"
                _wav(base / rel, 0.05, room * 10 + k)
                lines.append(f"--rir-id {size}-Room00{room}-0000{k} --room-id {size}-Room00{room} RIRS_NOISES/{rel}")
        (base / "simulated_rirs" / f"{size}room" / "rir_list").write_text("\n".join(lines) + "\n")
    real = base / "real_rirs_isotropic_noises"
    _wav(real / "RVB2014_type1_rir_largeroom1_far_angla.wav", 0.05, 1, channels=2)
    _wav(real / "RVB2014_type1_noise_largeroom1_1.wav", 0.5, 2, channels=2)
    (real / "rir_list").write_text(
        "--rir-id RVB2014_type1_rir_largeroom1_far_angla --room-id RVB2014_type1_rir_largeroom1 "
        "RIRS_NOISES/real_rirs_isotropic_noises/RVB2014_type1_rir_largeroom1_far_angla.wav\n")
    (real / "noise_list").write_text(
        "--noise-id RVB2014_type1_noise_largeroom1_1 --noise-type isotropic --room-linkage "
        "RVB2014_type1_rir_largeroom1 RIRS_NOISES/real_rirs_isotropic_noises/RVB2014_type1_noise_largeroom1_1.wav\n")
    point = base / "pointsource_noises"
    _wav(point / "noise-free-sound-0000.wav", 0.4, 3)
    (point / "noise_list").write_text("--noise-id noise-free-sound-0000 --noise-type point-source --bg-fg-type "
                                      "foreground RIRS_NOISES/pointsource_noises/noise-free-sound-0000.wav\n")
    return base


def prepare(*args):
    result = CliRunner().invoke(spkid_main, ["prepare", *map(str, args)])
    return result.exit_code, result.output


def test_musan_data_dirs_as_kaldi_make_musan(tmp_path):
    musan = make_musan(tmp_path / "corpora")
    code, out = prepare("musan", "--corpus-dir", musan.parent, "--output-dir", tmp_path / "data")
    assert code == 0, out
    data = tmp_path / "data"
    expected = {"noise": {"noise-free-sound-0000": 0.5, "noise-sound-bible-0000": 0.3},
                "music": {"music-fma-0000": 1.0, "music-fma-0001": 2.0},  # the unannotated one is left out
                "speech": {"speech-librivox-0000": 1.5}}
    for part, durations in expected.items():
        d = data / f"musan_{part}"
        validate_data_dir(d, no_feats=True, no_text=True)
        assert read_text_table(d / "utt2spk") == {u: u for u in durations}
        assert {u: float(v) for u, v in read_text_table(d / "reco2dur").items()} == durations
        wav = read_text_table(d / "wav.scp")
        assert all(p.startswith(str(musan)) and p.endswith(f"/{u}.wav") for u, p in wav.items())
        assert (data / "manifests" / f"musan_recordings_{part}.jsonl.gz").is_file()
    # without vocals (Kaldi's make_musan.sh --use-vocals false): only the instrumental piece
    code, out = prepare("musan", "--corpus-dir", musan, "--output-dir", tmp_path / "novocals", "--parts", "music",
                        "--use-vocals", "false")
    assert code == 0, out
    assert list(read_text_table(tmp_path / "novocals" / "musan_music" / "utt2spk")) == ["music-fma-0001"]
    assert not (tmp_path / "novocals" / "musan_noise").exists()


def test_musan_dirs_feed_augment_data_dir(run, shared_data, tmp_path):
    musan = make_musan(tmp_path / "corpora")
    assert prepare("musan", "--corpus-dir", musan, "--output-dir", tmp_path)[0] == 0
    train = write_data_dir(tmp_path / "train", [(s, u, str(p)) for s, u, p in
                                                flac_files(shared_data, "arabic_speech_commands", 1, 2)])
    run([AUGMENT, "--utt-suffix", "music", "--bg-snrs", "5", "--num-bg-noises", "1", "--bg-noise-dir",
         str(tmp_path / "musan_music"), str(train), str(tmp_path / "train_music")])
    run([AUGMENT, "--utt-suffix", "noise", "--fg-interval", "1", "--fg-snrs", "0", "--fg-noise-dir",
         str(tmp_path / "musan_noise"), str(train), str(tmp_path / "train_noise")])
    music = read_text_table(tmp_path / "train_music" / "wav.scp")
    noise = read_text_table(tmp_path / "train_noise" / "wav.scp")
    assert all(str(musan / "music" / "fma") in line for line in music.values())
    assert all(str(musan / "noise") in line for line in noise.values())
    from spkid.kaldi.audio import read_audio_channels

    for line in list(music.values()) + list(noise.values()):
        audio, rate = read_audio_channels(line)
        assert rate == RATE and len(audio) > 0 and np.abs(audio).max() > 0


def test_rirs_noises_lists_absolute_and_read_by_reverberate_data_dir(run, shared_data, tmp_path):
    base = make_rirs_noises(tmp_path / "corpora")
    code, out = prepare("rirs_noises", "--corpus-dir", base.parent, "--output-dir", tmp_path / "data")
    assert code == 0, out
    data = tmp_path / "data"
    sim = data / "rirs_noises_sim_rir"
    assert len(read_text_table(sim / "wav.scp")) == 12 and "small-Room001-00001" in read_text_table(sim / "wav.scp")
    small = (sim / "smallroom_rir_list").read_text().splitlines()
    assert small[0] == (f"--rir-id small-Room001-00001 --room-id small-Room001 "
                        f"{base}/simulated_rirs/smallroom/Room001/Room001-00001.wav")
    assert len((sim / "rir_list").read_text().splitlines()) == 12
    assert (data / "rirs_noises_real_rir" / "rir_list").read_text().split()[3] == "RVB2014_type1_rir_largeroom1"
    assert list(read_text_table(data / "rirs_noises_iso_noise" / "wav.scp")) == ["RVB2014_type1_noise_largeroom1_1"]
    assert "--bg-fg-type foreground " in (data / "rirs_noises_point_noise" / "noise_list").read_text()
    train = write_data_dir(tmp_path / "train", [(s, u, str(p)) for s, u, p in
                                                flac_files(shared_data, "arabic_speech_commands", 1, 2)])
    run([REVERBERATE, "--rir-set-parameters", f"0.5, {sim}/smallroom_rir_list", "--rir-set-parameters",
         f"0.5, {sim}/mediumroom_rir_list", "--noise-set-parameters", f"{data}/rirs_noises_point_noise/noise_list",
         "--pointsource-noise-addition-probability", "1", "--isotropic-noise-addition-probability", "0",
         "--utt-suffix", "reverb", str(train), str(tmp_path / "train_reverb")])
    lines = read_text_table(tmp_path / "train_reverb" / "wav.scp").values()
    assert all(f'--impulse-response="{base}/simulated_rirs/' in line for line in lines), list(lines)
    from spkid.kaldi.audio import read_audio_channels

    audio, rate = read_audio_channels(next(iter(lines)))
    assert rate == RATE and np.abs(audio).max() > 0


def test_rirs_noises_bad_list_line_names_it_and_writes_nothing(tmp_path):
    base = make_rirs_noises(tmp_path / "corpora")
    rir_list = base / "pointsource_noises" / "noise_list"
    rir_list.write_text(rir_list.read_text() + "--noise-id gone --noise-type point-source RIRS_NOISES/gone.wav\n")
    code, out = prepare("rirs_noises", "--corpus-dir", base, "--output-dir", tmp_path / "data", "--parts",
                        "point_noise")
    assert code == 1 and f"{rir_list}:2" in out and "gone.wav" in out and "Traceback" not in out, out
    assert not (tmp_path / "data" / "rirs_noises_point_noise").exists()
    (base / "simulated_rirs" / "largeroom" / "rir_list").unlink()
    code, out = prepare("rirs_noises", "--corpus-dir", base, "--output-dir", tmp_path / "data", "--parts", "sim_rir")
    assert code == 1 and "largeroom/rir_list" in out, out


@pytest.mark.parametrize("name", ["musan", "rirs_noises"])
def test_missing_corpus_and_unknown_part(tmp_path, name):
    code, out = prepare(name, "--corpus-dir", tmp_path / "nothing", "--output-dir", tmp_path / "data")
    assert code == 1 and str(tmp_path / "nothing") in out and "Traceback" not in out, out
    code, out = prepare(name, "--corpus-dir", tmp_path, "--output-dir", tmp_path / "data", "--parts", "bogus")
    assert code == 1 and "unknown part 'bogus'" in out, out
