"""--device / device=: one parser (spkid.devices) for training, extraction, verify and the Python API; a name
this machine cannot run is a one-line error, not torch's AssertionError or RuntimeError."""
from __future__ import annotations

import pytest
import torch

import spkid
from spkid.devices import parse_device

NO_CUDA = not torch.cuda.is_available()


def test_parse_device():
    assert parse_device("cpu") == torch.device("cpu") and parse_device(torch.device("cpu")).type == "cpu"
    assert parse_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    for bad in ("foo", "cuda:x", "meta", "", None):
        with pytest.raises(spkid.SpkidError, match="unknown device"):
            parse_device(bad)
    if NO_CUDA:
        with pytest.raises(spkid.SpkidError, match="^cuda is not available on this machine"):
            parse_device("cuda")
        with pytest.raises(spkid.SpkidError, match="^device cuda:1: cuda is not available"):
            parse_device("cuda:1")
    else:
        with pytest.raises(spkid.SpkidError, match="this machine has"):
            parse_device(f"cuda:{torch.cuda.device_count()}")


def _tiny_exp(root):
    from spkid.models import build_model
    from spkid.train.checkpoint import save_checkpoint

    config = {"feat_dim": 40, "hidden_size": 8, "num_layers": 1, "embed_dim": 4}
    save_checkpoint(root / "checkpoints" / "step-00000001.pt", model_name="ge2e", model_config=config,
                    state_dict=build_model("ge2e", config).state_dict(),
                    feature_config={"type": "kaldi-fbank", "num_mel_bins": 40, "dither": 0.0})
    return root


@pytest.mark.parametrize("device", ["foo", "cuda"] if NO_CUDA else ["foo"])
def test_commands_and_api_refuse_a_bad_device_in_one_line(device, shared_data, tmp_path, run):
    exp = _tiny_exp(tmp_path / "exp")
    wav = str(sorted((shared_data / "vctk_mini").glob("*/*.flac"))[0])
    (tmp_path / "wav.scp").write_text(f"a {wav}\n")
    (tmp_path / "data").mkdir()
    for name in ("wav.scp", "utt2spk", "spk2utt"):
        (tmp_path / "data" / name).write_text(f"a {wav}\n" if name == "wav.scp" else "a a\n")
    want = "unknown device foo" if device == "foo" else "cuda is not available on this machine"
    for args in (["extract-embeddings", "--model", str(exp), "--scp", str(tmp_path / "wav.scp"), "--output",
                  "ark:/dev/null"],
                 ["verify", "--model", str(exp), "--threshold", "0.5", wav, wav],
                 ["train", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "train"),
                  "--opts", "task", "ge2e"]):
        proc = run(["spkid", *args, "--device", device], check=False, text=True)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("Error: ") and want in proc.stderr
    assert not (tmp_path / "train").exists()  # refused before the exp dir is written
    with pytest.raises(spkid.SpkidError, match=want):
        spkid.load_model(str(exp), device=device)
