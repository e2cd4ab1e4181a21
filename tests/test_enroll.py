"""spkid enroll / identify with Resemblyzer's pretrained GE2E: 10 LibriSpeech speakers enrolled from 5
utterances each, their 50 held-out utterances identified, unknown speakers (VCTK, Arabic speech
commands) rejected at a threshold calibrated on a separate dev list (speechocean762); the store is
Kaldi-readable."""
from __future__ import annotations

import itertools
import json

import kaldiio
import numpy as np
import pytest

import spkid
from spkid.scoring.calibration import fit_calibration


@pytest.fixture(scope="module")
def exp_dir(tmp_path_factory, shared_data):
    """The pretrained GE2E as an exp dir, with a calibration of speechocean762 dev trials in
    EXPDIR/calibration.json (20 speakers x 4 utterances, all pairs: speakers none of the tests use).

    Its threshold is the min-DCF point (p_target 0.01): open-set identification takes the best of N
    speakers, so an unknown speaker gets N chances of a false alarm; the EER point (0.68 here) lets
    about a third of the unknown speakers through (the figures are printed)."""
    from conftest import run_cmd

    out = tmp_path_factory.mktemp("ge2e") / "exp"
    run_cmd(["spkid", "import-resemblyzer", "--output", str(out)])
    model = spkid.load_model(str(out), device="cpu")
    assert model.calibration is None
    speakers = sorted(d for d in (shared_data.parent / "speechocean762").iterdir() if d.is_dir())[:20]
    files = [(s.name, f) for s in speakers for f in sorted(s.glob("*.flac"))[:4]]
    emb = model.embed_batch([f for _, f in files])
    scores, labels = [], []
    for (i, (a, _)), (j, (b, _)) in itertools.combinations(enumerate(files), 2):
        scores.append(float(emb[i] @ emb[j]))
        labels.append(a == b)
    fit_calibration(np.array(scores), np.array(labels), "min-dcf").save(str(out / "calibration.json"))
    return out


def test_identify_known_and_unknown(exp_dir, shared_data, tmp_path, run):
    db = tmp_path / "db"
    libri = sorted(d for d in (shared_data / "librispeech_test_other").iterdir() if d.is_dir())
    assert len(libri) == 10
    held_out = {}
    for spk in libri:
        files = sorted(spk.glob("*.flac"))
        assert len(files) == 10
        run(["spkid", "enroll", "--model", str(exp_dir), "--db", str(db), "--speaker", spk.name,
             *map(str, files[:5])])
        held_out.update({str(f): spk.name for f in files[5:]})
    unknown = sorted(map(str, (shared_data / "vctk_mini").glob("*/*.flac")))
    unknown += [str(sorted(d.glob("*.flac"))[0]) for d in sorted((shared_data / "arabic_speech_commands").iterdir())
                if d.is_dir()]
    assert len(held_out) == 50 and len(unknown) >= 60
    out = run(["spkid", "identify", "--db", str(db), "--top-n", "3", *held_out, *unknown], text=True).stdout
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()}
    assert set(lines) == set(held_out) | set(unknown)
    top1 = np.mean([lines[f][1].split(":")[0] == spk for f, spk in held_out.items()])  # best candidate, closed set
    accepted = np.mean([lines[f][0] == spk for f, spk in held_out.items()])  # right and above the threshold
    wrong_name = sum(lines[f][0] not in (spk, "unknown") for f, spk in held_out.items())
    rejected = np.mean([lines[f][0] == "unknown" for f in unknown])
    calib = json.loads((exp_dir / "calibration.json").read_text())
    eer_point = calib["thresholds"]["eer"]
    best = {f: float(lines[f][1].split(":")[1]) for f in lines}
    print(f"\nmin-DCF threshold {calib['threshold']:.4f}: closed-set top-1 {top1:.1%}, open-set accepted "
          f"{accepted:.1%} (wrong speaker {wrong_name}), unknown rejected {rejected:.1%} of {len(unknown)}; "
          f"at the EER threshold {eer_point:.4f}: accepted {np.mean([best[f] >= eer_point for f in held_out]):.1%}, "
          f"unknown rejected {np.mean([best[f] < eer_point for f in unknown]):.1%}")
    assert top1 >= 0.9  # chance: 10%
    assert accepted >= 0.85 and wrong_name <= 2
    assert rejected >= 0.9
    # the threshold decides: a threshold of -1 accepts every unknown, one above 1 rejects everything
    out = run(["spkid", "identify", "--db", str(db), "--threshold", "-1", *unknown[:3]], text=True).stdout
    assert all(line.split()[1] != "unknown" for line in out.splitlines())
    out = run(["spkid", "identify", "--db", str(db), "--threshold", "1.01", *list(held_out)[:3]], text=True).stdout
    assert all(line.split()[1] == "unknown" for line in out.splitlines())


def test_store_is_kaldi_readable_and_incremental(exp_dir, shared_data, tmp_path, run):
    db = tmp_path / "db"
    spk = sorted(d for d in (shared_data / "librispeech_test_other").iterdir() if d.is_dir())[0]
    files = sorted(spk.glob("*.flac"))
    run(["spkid", "enroll", "--model", str(exp_dir), "--db", str(db), "--speaker", "alice", *map(str, files[:3])])
    model = spkid.load_model(str(exp_dir), device="cpu")
    emb = model.embed_batch(files[:4])
    means = dict(kaldiio.load_scp(str(db / "spk_xvector.scp")))  # as ivector-mean writes them: plain means
    assert list(means) == ["alice"] and np.allclose(means["alice"], emb[:3].mean(axis=0), atol=1e-5)
    assert (db / "num_utts.ark").read_text() == "alice 3\n"
    # a 4th utterance updates the mean with the stored count; a bad file is reported, the rest enrolled
    proc = run(["spkid", "enroll", "--db", str(db), "--speaker", "alice", str(files[3]), "/no/such.wav"],
               check=False, text=True)
    assert proc.returncode == 1 and "/no/such.wav" in proc.stderr.strip().splitlines()[-1]
    means = dict(kaldiio.load_scp(str(db / "spk_xvector.scp")))
    assert np.allclose(means["alice"], emb.mean(axis=0), atol=1e-5)
    assert (db / "num_utts.ark").read_text() == "alice 4\n"
    # the Python store reads the same folder; another model is refused
    loaded = spkid.SpeakerDB.load(db, model)
    assert loaded.speakers == ["alice"] and loaded.num_utts("alice") == 4
    name, score = loaded.identify(files[5])
    assert name == "alice" and score >= model.threshold
    proc = run(["spkid", "identify", "--db", str(db), "--model", str(exp_dir / "checkpoints" / "step-00000000.pt"),
                str(files[5])], text=True)
    assert proc.stdout.split()[1] == "alice"
    with pytest.raises(spkid.SpkidError, match="enrolled with model"):
        spkid.SpeakerDB.load(db, _other_model(tmp_path))
    proc = run(["spkid", "identify", "--db", str(tmp_path / "nodb"), str(files[5])], check=False, text=True)
    assert proc.returncode == 1 and "model.json" in proc.stderr


def _other_model(tmp_path):
    """A different (random) checkpoint."""
    import torch

    from spkid.models import build_model
    from spkid.train.checkpoint import save_checkpoint

    torch.manual_seed(1)
    model = build_model("ge2e", {"input_dim": 40, "hidden_size": 8, "num_layers": 1, "embedding_dim": 8})
    path = save_checkpoint(tmp_path / "rand.pt", model_name="ge2e", model_config=model.to_config(),
                           feature_config={"type": "kaldi-fbank", "num_mel_bins": 40}, state_dict=model.state_dict())
    return spkid.load_model(str(path), device="cpu")
