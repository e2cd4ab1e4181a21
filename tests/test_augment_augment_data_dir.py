"""steps/data/augment_data_dir.py and reverberate_data_dir.py on tiny data dirs: Kaldi's wav.scp lines and ids,
determinism, and the augmented dirs read by spkid compute-fbank (through the wav-reverberate shim)."""
from __future__ import annotations

import re

import numpy as np
import pytest
import soundfile as sf
from conftest import ROOT, flac_files, write_data_dir

AUGMENT = str(ROOT / "steps" / "data" / "augment_data_dir.py")
REVERBERATE = str(ROOT / "steps" / "data" / "reverberate_data_dir.py")


def table(path):
    return dict(line.split(" ", 1) for line in path.read_text().splitlines())


@pytest.fixture
def dirs(shared_data, tmp_path):
    """data/train: 4 one-second 16 kHz utterances of 2 speakers; noise dirs: white noises (0.4 s, 0.25 s) and
    three longer speech recordings (babble/music stand-in); an RIR list with 2 rooms."""
    train = write_data_dir(tmp_path / "train", [(s, u, str(p)) for s, u, p in
                                                flac_files(shared_data, "arabic_speech_commands", 2, 2)])
    rng = np.random.default_rng(0)
    noise_entries = []
    for name, seconds in (("white1", 0.4), ("white2", 0.25)):
        path = tmp_path / f"{name}.wav"
        sf.write(str(path), rng.normal(0, 0.1, int(16000 * seconds)), 16000, subtype="PCM_16")
        noise_entries.append((name, name, str(path)))
    noise = write_data_dir(tmp_path / "noise", noise_entries)
    speech = write_data_dir(tmp_path / "babble", [(s, u, str(p)) for s, u, p in
                                                  flac_files(shared_data, "vctk_mini", 3, 1)])
    rir_lines = []
    for room, peak in (("room1", 10), ("room2", 50)):
        rir = np.zeros(800)
        rir[peak] = 1.0
        rir[peak + 1:] = rng.normal(0, 0.05, 800 - peak - 1) * np.exp(-np.arange(800 - peak - 1) / 200)
        path = tmp_path / f"{room}.wav"
        sf.write(str(path), rir * 0.9, 16000, subtype="PCM_16")
        rir_lines.append(f"--rir-id {room}-1 --room-id {room} {path}\n")
    (tmp_path / "rir_list").write_text("".join(rir_lines))
    return {"train": train, "noise": noise, "babble": speech, "rir_list": tmp_path / "rir_list", "tmp": tmp_path}


def fbank(run, data_dir, out):
    run(["spkid", "compute-fbank", "--dither=0", "--data", str(data_dir), f"ark:{out}"])
    from spkid.kaldi.io import read_dict

    return read_dict(f"ark:{out}")


def test_foreground_noise_lines_and_ids(run, dirs):
    train, out = dirs["train"], dirs["tmp"] / "train_noise"
    (dirs["noise"] / "wav.scp").write_text(f"white1 {dirs['tmp']}/white1.wav\n")  # one noise, one SNR: no choice
    (dirs["noise"] / "utt2spk").write_text("white1 white1\n")
    (dirs["noise"] / "spk2utt").write_text("white1 white1\n")
    run([AUGMENT, "--utt-suffix", "noise", "--fg-interval", "0", "--fg-snrs", "5", "--fg-noise-dir",
         str(dirs["noise"]), str(train), str(out)])
    assert (train / "reco2dur").is_file()  # computed, as utils/data/get_reco2dur.sh would
    wav = table(out / "wav.scp")
    source = table(train / "wav.scp")
    assert sorted(wav) == sorted(f"{u}-noise" for u in source)
    noise = f"{dirs['tmp']}/white1.wav"
    for utt, rx in source.items():  # 1 s of speech covered by 0.4 s noises back to back: starts 0, 0.4, 0.8
        assert wav[f"{utt}-noise"] == (f"wav-reverberate --shift-output=true --additive-signals='{noise},{noise},"
                                       f"{noise}' --start-times='0,0.4,0.8' --snrs='5,5,5' {rx} - |")
    assert table(out / "utt2spk") == {f"{u}-noise": s for u, s in table(train / "utt2spk").items()}
    assert table(out / "utt2uniq") == {f"{u}-noise": u for u in source}
    assert (out / "spk2utt").is_file()


def test_noise_and_babble_through_compute_fbank(run, dirs):
    train = dirs["train"]
    noise_dir, babble_dir = dirs["tmp"] / "train_noise", dirs["tmp"] / "train_babble"
    run([AUGMENT, "--utt-suffix", "noise", "--fg-interval", "1", "--fg-snrs", "15:10:5:0", "--fg-noise-dir",
         str(dirs["noise"]), str(train), str(noise_dir)])
    run([AUGMENT, "--utt-suffix", "babble", "--bg-snrs", "20:17:15:13", "--num-bg-noises", "2:3",
         "--bg-noise-dir", str(dirs["babble"]), str(train), str(babble_dir)])
    for line in table(babble_dir / "wav.scp").values():
        assert line.count("wav-reverberate --duration=1.0 ") in (2, 3)
        snrs = re.search(r"--snrs='([^']*)'", line).group(1).split(",")
        assert set(snrs) <= {"20", "17", "15", "13"}
    run(["utils/validate_data_dir.sh", "--no-feats", "--no-text", str(babble_dir)])
    clean = fbank(run, train, dirs["tmp"] / "clean.ark")
    for suffix, data in (("noise", noise_dir), ("babble", babble_dir)):
        feats = fbank(run, data, dirs["tmp"] / f"{suffix}.ark")
        assert sorted(feats) == sorted(f"{u}-{suffix}" for u in clean)
        for utt, mat in clean.items():
            aug = feats[f"{utt}-{suffix}"]
            assert aug.shape == mat.shape and np.abs(aug - mat).mean() > 0.1


def test_same_seed_same_output(run, dirs):
    outs = {}
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        outs[name] = dirs["tmp"] / name
        run([AUGMENT, "--random-seed", seed, "--utt-prefix", "music", "--bg-snrs", "15:10:8:5", "--bg-noise-dir",
             str(dirs["babble"]), str(dirs["train"]), str(outs[name])])
    a, b, c = (table(outs[k] / "wav.scp") for k in "abc")
    assert a == b and a != c
    assert all(k.startswith("music-") for k in a)


def test_reverberate_lines_ids_and_features(run, dirs):
    train, out = dirs["train"], dirs["tmp"] / "train_reverb"
    run([REVERBERATE, "--rir-set-parameters", f"0.5, {dirs['rir_list']}", "--speech-rvb-probability", "1",
         "--pointsource-noise-addition-probability", "0", "--isotropic-noise-addition-probability", "0",
         "--num-replications", "1", "--utt-suffix", "reverb", str(train), str(out)])
    wav, source = table(out / "wav.scp"), table(train / "wav.scp")
    assert sorted(wav) == sorted(f"{u}-reverb" for u in source)
    rirs = {f"{dirs['tmp']}/room1.wav", f"{dirs['tmp']}/room2.wav"}
    for utt, rx in source.items():
        m = re.fullmatch(rf'cat {re.escape(rx)} \| wav-reverberate --shift-output=true '
                         r'--impulse-response="(.*)"  - - \|', wav[f"{utt}-reverb"])
        assert m and m.group(1) in rirs
    assert table(out / "utt2spk") == {f"{u}-reverb": s for u, s in table(train / "utt2spk").items()}
    clean = fbank(run, train, dirs["tmp"] / "clean.ark")
    feats = fbank(run, out, dirs["tmp"] / "reverb.ark")
    for utt, mat in clean.items():
        assert feats[f"{utt}-reverb"].shape == mat.shape and np.abs(feats[f"{utt}-reverb"] - mat).mean() > 0.05


def test_reverberate_replicas_noises_and_options(run, dirs):
    train, out = dirs["train"], dirs["tmp"] / "rvb"
    noise_list = dirs["tmp"] / "noise_list"
    noise_list.write_text(f"--noise-id n1 --noise-type point-source --bg-fg-type foreground {dirs['tmp']}/white1.wav\n"
                          f"--noise-id n2 --noise-type isotropic --room-linkage room1 {dirs['tmp']}/white2.wav\n")
    run([REVERBERATE, "--rir-set-parameters", str(dirs["rir_list"]), "--noise-set-parameters", str(noise_list),
         "--num-replications", "2", "--max-noises-per-minute", "120", "--source-sampling-rate", "16000",
         str(train), str(out)])
    wav = table(out / "wav.scp")
    assert sorted(wav) == sorted(f"rvb{i}-{u}" for i in (1, 2) for u in table(train / "wav.scp"))
    assert table(out / "utt2spk") == {f"rvb{i}-{u}": f"rvb{i}-{s}" for i in (1, 2)
                                      for u, s in table(train / "utt2spk").items()}  # Kaldi prefixes speakers too
    first = next(iter(table(train / "utt2spk")))
    assert table(out / "utt2uniq")[f"rvb2-{first}"] == first
    for line in wav.values():
        assert re.search(r'--impulse-response="sox \S+/room[12].wav -r 16000 -t wav - \|"', line)
        assert f"sox {dirs['tmp']}/white1.wav -r 16000 -t wav - | wav-reverberate --impulse-response=" in line
        starts = re.search(r"--start-times='([^']*)'", line).group(1).split(",")
        assert all(0 <= float(t) <= 1.0 for t in starts)
    none_dir = dirs["tmp"] / "none"
    run([REVERBERATE, "--rir-set-parameters", str(dirs["rir_list"]), "--speech-rvb-probability", "0",
         str(train), str(none_dir)])
    assert table(none_dir / "wav.scp") == {u: f"cat {rx} |" for u, rx in table(train / "wav.scp").items()}


def test_user_errors_are_one_line(run, dirs):
    proc = run([AUGMENT, str(dirs["train"]), str(dirs["tmp"] / "x")], check=False)
    assert proc.returncode == 1 and b"Either --fg-noise-dir or --bg-noise-dir" in proc.stderr
    assert b"Traceback" not in proc.stderr
    proc = run([REVERBERATE, "--rir-set-parameters", str(dirs["tmp"] / "missing"), str(dirs["train"]),
                str(dirs["tmp"] / "y")], check=False)
    assert proc.returncode == 1 and b"missing not found" in proc.stderr and b"Traceback" not in proc.stderr


def digests(folder):
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_output_that_is_the_input_is_refused_before_anything_is_written(run, dirs, tmp_path):
    """Bug 5: `augment_data_dir.py ... data/train data/train` overwrote the input's tables, then failed."""
    train = dirs["train"]
    run([AUGMENT, "--fg-snrs", "5", "--fg-noise-dir", str(dirs["noise"]), str(train), str(tmp_path / "warm")])
    before = digests(train)  # reco2dur now exists: nothing at all may change below
    (tmp_path / "link").symlink_to(train)
    fg = ["--utt-suffix", "noise", "--fg-snrs", "15", "--fg-noise-dir", str(dirs["noise"])]
    rvb = ["--rir-set-parameters", str(dirs["rir_list"])]
    link, inp = str(tmp_path / "link"), "input data dir"
    for script, opts, output, what in (
            (AUGMENT, fg, str(train), inp), (AUGMENT, fg, f"{train}/", inp), (AUGMENT, fg, link, inp),
            (AUGMENT, fg, str(dirs["noise"]), "--fg-noise-dir"), (REVERBERATE, rvb, f"{train}/", inp),
            (REVERBERATE, rvb, link, inp)):
        proc = run([script, *opts, str(train), output], check=False, text=True)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert f"the output dir {output.rstrip('/')} is the {what}" in proc.stderr.splitlines()[-1], proc.stderr
        assert digests(train) == before
    proc = run([AUGMENT, *fg, str(train), str(tmp_path)], check=False, text=True)  # a folder holding the input
    assert proc.returncode == 1 and "holds the input data dir" in proc.stderr and digests(train) == before
    (tmp_path / "notdata").mkdir()
    (tmp_path / "notdata" / "thesis.tex").write_text("years of work")
    proc = run([AUGMENT, *fg, str(train), str(tmp_path / "notdata")], check=False, text=True)
    assert proc.returncode == 1 and "is not a data dir" in proc.stderr
    assert (tmp_path / "notdata" / "thesis.tex").read_text() == "years of work"


def test_a_failed_run_leaves_no_output_and_keeps_an_older_one(run, dirs, tmp_path):
    """UX 7: the output dir is staged and replaced as a whole; when no utterance is left, nothing changes."""
    out = tmp_path / "train_noise"
    fg = ["--utt-suffix", "noise", "--fg-snrs", "15", "--fg-noise-dir", str(dirs["noise"])]
    run([AUGMENT, *fg, str(dirs["train"]), str(out)])
    before = digests(out)
    empty = write_data_dir(tmp_path / "nothing_matches", [("s", "u1", str(dirs["tmp"] / "white1.wav"))])
    (empty / "utt2spk").write_text("other s\n")  # no utterance of wav.scp has a speaker: fix_data_dir drops all
    (empty / "spk2utt").write_text("s other\n")
    proc = run([AUGMENT, *fg, str(empty), str(out)], check=False, text=True)
    assert proc.returncode == 1 and f"no utterances remained in {out}:" in proc.stderr, proc.stderr
    assert digests(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging leftovers
    proc = run([AUGMENT, *fg, str(empty), str(tmp_path / "new")], check=False, text=True)
    assert proc.returncode == 1 and not (tmp_path / "new").exists()


def test_empty_noise_lists_are_refused(run, dirs, tmp_path):
    """Bug 14: an empty noise dir, or --num-bg-noises 0, made 'augmented' copies without noise, exit 0."""
    empty = tmp_path / "empty_noise"
    empty.mkdir()
    (empty / "wav.scp").write_text("")
    (empty / "utt2spk").write_text("")
    for opts, message in (
            (["--fg-noise-dir", str(empty)], f"--fg-noise-dir {empty}: its wav.scp lists no noise"),
            (["--bg-noise-dir", str(empty)], f"--bg-noise-dir {empty}: its wav.scp lists no noise"),
            (["--num-bg-noises", "0", "--bg-noise-dir", str(dirs["babble"])],
             "--num-bg-noises 0 adds none of the noises of --bg-noise-dir"),
            (["--num-bg-noises", "1:-1", "--bg-noise-dir", str(dirs["babble"])], "--num-bg-noises: expected numbers")):
        proc = run([AUGMENT, "--utt-suffix", "noise", "--fg-snrs", "15:10", *opts, str(dirs["train"]),
                    str(tmp_path / "aug")], check=False, text=True)
        assert proc.returncode == 1 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
        assert not (tmp_path / "aug").exists()
    run([AUGMENT, "--num-bg-noises", "0:1", "--bg-noise-dir", str(dirs["babble"]), str(dirs["train"]),
         str(tmp_path / "aug")])  # some clean copies among noisy ones is a choice Kaldi allows


def test_rir_lists_that_are_empty_or_name_missing_files_are_one_line(run, dirs, tmp_path):
    """UX 5: an empty RIR list said 'internal error: probabilities do not add up'; UX 7: missing RIR files were
    accepted (every new utterance then failed later)."""
    (tmp_path / "empty_list").write_text("")
    lines = dirs["rir_list"].read_text().splitlines()
    (tmp_path / "bad_list").write_text(f"{lines[0]}\n--rir-id r3 --room-id room3 {tmp_path}/gone.wav\n")
    for rir_list, message in ((tmp_path / "empty_list", f"{tmp_path}/empty_list: the rir list is empty"),
                              (tmp_path / "bad_list", f"{tmp_path}/bad_list:2: rir file '{tmp_path}/gone.wav' "
                                                      "does not exist")):
        proc = run([REVERBERATE, "--rir-set-parameters", str(rir_list), str(dirs["train"]), str(tmp_path / "rvb")],
                   check=False, text=True)
        assert proc.returncode == 1 and proc.stderr.strip().splitlines()[-1].endswith(message), proc.stderr
        assert not (tmp_path / "rvb").exists()
