"""egs/mini/v1/local/make_data.py: the closed-set split and the open-set split (speakers held out)."""
from __future__ import annotations

from collections import Counter

from conftest import ROOT

MAKE_DATA = ROOT / "egs/mini/v1/local/make_data.py"


def table(path) -> dict[str, str]:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


def test_open_set_split_holds_speakers_out_of_training(shared_data, tmp_path, run):
    run([str(MAKE_DATA), "--heldout-speakers", "10", "--open-per-speaker", "10", str(shared_data), str(tmp_path)])
    train, test, opn = (table(tmp_path / d / "utt2spk") for d in ("train", "test", "test_open"))
    heldout = set(opn.values())
    assert len(heldout) == 10 and not heldout & set(train.values()) and not heldout & set(test.values())
    assert set(test.values()) == set(train.values()) and len(set(train.values())) == 30
    assert not set(train) & set(test) and not set(train) & set(opn)
    # every corpus gives speakers, in proportion: fsdd 6, arabic 20, librispeech 10, vctk 4 of 40
    corpus = {spk: p.split("/")[-3] for u, spk in opn.items() for p in [table(tmp_path / "test_open/wav.scp")[u]]}
    counts = Counter(corpus.values())
    assert set(counts) == {"fsdd", "arabic_speech_commands", "librispeech_test_other", "vctk_mini"}, counts
    assert counts["arabic_speech_commands"] == 5 and sum(counts.values()) == 10
    assert Counter(opn.values()) == {s: 10 for s in heldout}
    trials = [line.split() for line in (tmp_path / "test_open/trials").read_text().splitlines()]
    assert len(trials) == 100 * 99 // 2
    assert all((opn[a] == opn[b]) == (kind == "target") for a, b, kind in trials)


def test_without_heldout_speakers_the_split_is_closed_set_as_before(shared_data, tmp_path, run):
    proc = run([str(MAKE_DATA), str(shared_data), str(tmp_path)])
    assert "40 training speakers, 5420 train and 120 closed-set test utterances (7140 trials)" in proc.stdout.decode()
    assert not (tmp_path / "test_open").exists()


def test_encoder_compare_script_runs_every_stage(shared_data, tmp_path, run):
    """local/encoder_compare.sh (README "Open-set comparison") on a miniature of ../shared: data dirs with
    speakers held out, 64-bin fbank + VAD, two encoders for 3 steps, averaging, a results line per model."""
    import os

    shared = tmp_path / "shared"
    for dataset, speakers in (("librispeech_test_other", 8), ("vctk_mini", 4), ("arabic_speech_commands", 8)):
        for spk in sorted(p for p in (shared_data / dataset).iterdir() if p.is_dir())[:speakers]:
            (shared / "data" / dataset / spk.name).mkdir(parents=True)
            for f in sorted(spk.glob("*.flac"))[:3]:
                os.symlink(f, shared / "data" / dataset / spk.name / f.name)
    for spk in sorted(p for p in (shared_data.parent / "speechocean762").iterdir() if p.is_dir())[:3]:
        (shared / "speechocean762" / spk.name).mkdir(parents=True)
        for f in sorted(spk.glob("*.flac"))[:3]:
            os.symlink(f, shared / "speechocean762" / spk.name / f.name)
    opts = ("--opts train.max_steps 3 train.checkpoint_every 1 train.log_every 1 classification.batch_size 4 "
            "data.num_workers 0")
    out = tmp_path / "cmp"
    run(["local/encoder_compare.sh", "--dir", str(out), "--shared", str(shared), "--nj", "1", "--train-opts", opts,
         "ecapa", "deepspeaker"], cwd=ROOT / "egs/mini/v1")
    assert not set(table(out / "train/utt2spk").values()) & set(table(out / "test_open/utt2spk").values())
    lines = (out / "results.txt").read_text().splitlines()
    assert len(lines) == 6 and lines[0].startswith("ecapa: 1,929,312 encoder parameters, trained in ")
    assert lines[3].startswith("deepspeaker: ") and "encoder parameters" in lines[3]
    for line, name in zip(lines[1::3] + lines[2::3], ["ecapa", "deepspeaker", "ecapa_avg3", "deepspeaker_avg3"]):
        assert line.strip().startswith(f"{name} EER=") and "minDCF(0.01,0.05)=" in line, line
    assert (out / "exp/ecapa/avg3.pt").is_file()
