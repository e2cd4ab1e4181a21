"""Non-finite weights (reliability bug 11) are refused, in one line naming the file and the tensor, by
import-pretrained, average-checkpoints and every load; an embedding that comes out non-finite anyway (finite
weights that overflow) is that utterance's failure, never a success."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import spkid
from spkid.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op thread
CONFIG = {"feat_dim": 40, "hidden_size": 16, "num_layers": 1, "embed_dim": 8}
FEATURES = {"type": "kaldi-fbank", "num_mel_bins": 40, "dither": 0.0}


def ge2e_checkpoint(path, edit=None, step=1):
    from spkid.models import build_model

    torch.manual_seed(0)
    state = build_model("ge2e", CONFIG).state_dict()
    if edit:
        edit(state)
    return save_checkpoint(path / "checkpoints" / f"step-{step:08d}.pt", model_name="ge2e", model_config=CONFIG,
                           state_dict=state, feature_config=FEATURES, step=step)


def poison(state):
    state["lstm.weight_hh_l0"][3, 2] = float("nan")


def one_line(proc, *words):
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


@pytest.fixture
def scp(shared_data, tmp_path):
    from conftest import flac_files

    files = flac_files(shared_data, "librispeech_test_other", n_spk=1, n_utt=3)
    path = tmp_path / "wav.scp"
    path.write_text("".join(f"{u} {p}\n" for _, u, p in files))
    return path


def test_load_refuses_non_finite_weights(tmp_path, scp, run):
    bad = ge2e_checkpoint(tmp_path / "exp", poison)
    with pytest.raises(spkid.SpkidError, match=r"step-00000001.pt: tensor 'lstm.weight_hh_l0' has 1 non-finite"):
        spkid.load_model(str(bad), device="cpu")
    proc = run(["spkid", "extract-embeddings", "--model", str(bad), "--scp", str(scp), "--output",
                f"ark,t:{tmp_path}/e.txt"], check=False, text=True)
    one_line(proc, str(bad), "lstm.weight_hh_l0", "non-finite")
    assert not (tmp_path / "e.txt").exists()
    proc = run(["spkid", "export", "--model", str(bad), "--format", "onnx", "--output", str(tmp_path / "m.onnx")],
               check=False, text=True)
    one_line(proc, "lstm.weight_hh_l0")


def test_average_checkpoints_refuses_non_finite_weights(tmp_path, run):
    exp = tmp_path / "exp"
    ge2e_checkpoint(exp, step=1)
    bad = ge2e_checkpoint(exp, poison, step=2)
    proc = run(["spkid", "average-checkpoints", "--exp", str(exp), "--output", str(tmp_path / "avg.pt")],
               check=False, text=True)
    one_line(proc, str(bad), "lstm.weight_hh_l0", "non-finite")
    assert not (tmp_path / "avg.pt").exists()


def test_import_pretrained_refuses_non_finite_weights(tmp_path, run):
    from spkid.models import build_model

    state = build_model("campplus", {"feat_dim": 80, "embed_dim": 192}).state_dict()
    state["xvector.dense.linear.weight"][0, 0] = float("inf")
    torch.save(state, tmp_path / "campplus.bin")
    proc = run(["spkid", "import-pretrained", "campplus", "--checkpoint", str(tmp_path / "campplus.bin"),
                "--output", str(tmp_path / "cam")], check=False, text=True)
    one_line(proc, "campplus.bin", "xvector.dense.linear.weight", "non-finite")
    assert not (tmp_path / "cam" / "checkpoints").exists()
    resemblyzer = pytest.importorskip("resemblyzer")
    from pathlib import Path

    payload = torch.load(Path(resemblyzer.__file__).parent / "pretrained.pt", map_location="cpu", weights_only=True)
    payload["model_state"]["linear.weight"][0, 0] = float("nan")
    torch.save(payload, tmp_path / "ge2e.pt")
    proc = run(["spkid", "import-pretrained", "resemblyzer-ge2e", "--checkpoint", str(tmp_path / "ge2e.pt"),
                "--output", str(tmp_path / "ge2e")], check=False, text=True)
    one_line(proc, "ge2e.pt", "linear.weight", "non-finite")


def overflowing(state):
    """Finite weights whose output overflows to inf, so the normalised embedding is NaN: every LSTM gate is
    saturated open (h -> 1 whatever the input), and 16 * 3e38 overflows float32."""
    state["lstm.weight_ih_l0"].zero_()
    state["lstm.weight_hh_l0"].zero_()
    state["lstm.bias_ih_l0"].fill_(100.0)
    state["projection.weight"].fill_(3e38)


def test_a_non_finite_embedding_is_a_failed_utterance(tmp_path, scp, run, shared_data):
    ckpt = ge2e_checkpoint(tmp_path / "exp", overflowing)
    model = spkid.load_model(str(ckpt), device="cpu")
    wav = scp.read_text().split()[1]
    with pytest.raises(spkid.SpkidError, match="non-finite .*embedding"):
        model.embed(wav)
    assert model.embed_each([wav])[0][0] is None and "non-finite" in model.embed_each([wav])[0][1]
    for workers in ("0", "2"):
        proc = run(["spkid", "extract-embeddings", "--model", str(ckpt), "--scp", str(scp), "--num-workers",
                    workers, "--output", f"ark,t:{tmp_path}/e{workers}.txt"], check=False, text=True)
        assert proc.returncode == 1 and "done 0 utterances, failed 3" in proc.stderr, proc.stderr
        assert "non-finite (NaN or infinite) embedding" in proc.stderr
    proc = run(["spkid", "verify", "--model", str(ckpt), "--threshold", "0.5", wav, wav], check=False, text=True)
    one_line(proc, wav, "non-finite")


def test_some_non_finite_embeddings_fail_only_their_utterances(tmp_path, scp, monkeypatch):
    """In a chunk where one utterance's embedding comes out NaN, the others are embedded."""
    from spkid.extract import iter_embeddings, utterances_from_scp
    from spkid.inference import Embedder

    model = spkid.load_model(str(ge2e_checkpoint(tmp_path / "exp")), device="cpu")
    real = Embedder.embed_features

    def second_is_nan(self, feats_list, batch_size=256):
        out = real(self, feats_list, batch_size)
        if len(out) > 1:
            out[1] = np.nan
        return out

    monkeypatch.setattr(Embedder, "embed_features", second_is_nan)
    utts, _ = utterances_from_scp(str(scp))
    results = list(iter_embeddings(utts, model.embedder, num_workers=0))
    assert [err is None for _, _, err in results] == [True, False, True]
    assert "non-finite" in results[1][2] and all(np.isfinite(e).all() for _, e, err in results if err is None)
