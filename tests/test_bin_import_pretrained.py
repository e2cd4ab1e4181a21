"""`spkid import-pretrained`: listing, errors, any CAM++ state dict with --embedding-dim. The pretrained
CAM++ through `spkid extract-embeddings` is checked against speakerlab in test_models_campplus.py."""
from __future__ import annotations

import pytest
import torch


def test_list_names(run):
    out = run(["spkid", "import-pretrained", "--list"]).stdout.decode()
    assert [line.split("\t")[0] for line in out.splitlines()] == ["resemblyzer-ge2e", "campplus-zh-en", "campplus"]


def test_bad_inputs_are_one_line_errors(run, tmp_path):
    bad = run(["spkid", "import-pretrained", "nosuch", "-o", str(tmp_path / "x")], check=False)
    assert bad.returncode != 0 and b"unknown pretrained model 'nosuch'" in bad.stderr
    assert b"Traceback" not in bad.stderr
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not torch")
    bad = run(["spkid", "import-pretrained", "campplus", "--checkpoint", str(junk), "-o", str(tmp_path / "y")],
              check=False)
    assert bad.returncode != 0 and b"junk.pt: cannot read the weights" in bad.stderr
    assert b"Traceback" not in bad.stderr and not (tmp_path / "y").exists()
    torch.save({"head.conv1.weight": torch.zeros(1)}, tmp_path / "partial.pt")
    bad = run(["spkid", "import-pretrained", "campplus", "--checkpoint", str(tmp_path / "partial.pt"),
               "-o", str(tmp_path / "z")], check=False)
    assert bad.returncode != 0 and b"not a 3D-Speaker CAM++ state dict" in bad.stderr
    missing = run(["spkid", "import-pretrained", "campplus", "-o", str(tmp_path / "w")], check=False)
    assert missing.returncode != 0 and b"needs --checkpoint" in missing.stderr


def test_campplus_checkpoint_with_embedding_dim(tmp_path):
    """Any 3D-Speaker CAM++ state dict imports; --embedding-dim is checked against the weights."""
    from spkid.errors import SpkidError
    from spkid.models import build_model
    from spkid.pretrained import import_pretrained
    from spkid.train.checkpoint import load_checkpoint

    source = build_model("campplus", {"feat_dim": 80, "embed_dim": 512})
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, tmp_path / "cam512.bin")
    with pytest.raises(SpkidError, match="holds 512-dim embeddings, not --embedding-dim 192"):
        import_pretrained("campplus", tmp_path / "bad", tmp_path / "cam512.bin", 192)
    import_pretrained("campplus", tmp_path / "exp", tmp_path / "cam512.bin", 512)
    ckpt = load_checkpoint(tmp_path / "exp", expect_model="campplus")
    assert ckpt["model"]["config"]["embed_dim"] == 512 and ckpt["extraction"] == {"scheme": "full"}
    assert ckpt["features"]["type"] == "kaldi-fbank" and ckpt["features"]["cmn"] is True
    assert ckpt["features"]["num_mel_bins"] == 80 and ckpt["features"]["dither"] == 0.0
    for key, value in source.state_dict().items():
        assert torch.equal(ckpt["state_dict"][key], value)


def test_resemblyzer_ge2e_is_import_resemblyzer(tmp_path):
    pytest.importorskip("resemblyzer", reason="resemblyzer not installed (pip install 'spkid[resemblyzer]')")
    from spkid.bin.import_resemblyzer import import_resemblyzer
    from spkid.pretrained import import_pretrained
    from spkid.train.checkpoint import load_checkpoint

    import_pretrained("resemblyzer-ge2e", tmp_path / "a")
    import_resemblyzer(tmp_path / "b")
    a, b = load_checkpoint(tmp_path / "a", expect_model="ge2e"), load_checkpoint(tmp_path / "b")
    assert a["features"] == b["features"] and a["extraction"] == b["extraction"] and a["model"] == b["model"]
    assert all(torch.equal(a["state_dict"][k], v) for k, v in b["state_dict"].items())
