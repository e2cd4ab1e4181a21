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
