"""spkid.inference.sources: what a model argument is, by what it is and its extension (never its content),
and one-line errors where a command needs a checkpoint and is given an export."""
from __future__ import annotations

import pytest
import torch

import spkid
from spkid.inference import checkpoint_path, describe_model, resolve_model
from spkid.train.checkpoint import is_torchscript_archive


@pytest.fixture
def exp(tmp_path):
    from spkid.train.checkpoint import save_checkpoint

    for step in (1, 3, 2):
        save_checkpoint(tmp_path / "exp" / "checkpoints" / f"step-{step:08d}.pt", model_name="ge2e",
                        model_config={"feat_dim": 40}, feature_config={"type": "kaldi-fbank"}, state_dict={})
    return tmp_path / "exp"


def test_kinds(exp, tmp_path, monkeypatch):
    monkeypatch.setenv("SPKID_CACHE", str(tmp_path / "cache"))
    source = describe_model(exp)
    assert (source.kind, source.path.name, source.root) == ("exp-dir", "step-00000003.pt", exp)
    newest = exp / "checkpoints" / "step-00000003.pt"
    assert describe_model(str(newest)).kind == "checkpoint" and describe_model(newest).root == newest
    for name, kind in (("m.onnx", "onnx"), ("m.ONNX", "onnx"), ("m.ts", "torchscript"),
                       ("m.torchscript", "torchscript"), ("m.pt", "checkpoint"), ("m.bin", "checkpoint")):
        (tmp_path / name).write_bytes(b"x")
        assert describe_model(tmp_path / name).kind == kind, name
    pretrained = describe_model("resemblyzer-ge2e")  # not imported: nothing is done to describe it
    assert pretrained.kind == "pretrained" and pretrained.path is None
    assert pretrained.root == tmp_path / "cache" / "models" / "resemblyzer-ge2e" and not pretrained.root.exists()
    with pytest.raises(spkid.SpkidError, match=r"^nosuch: no such model file or directory, nor a pretrained model "
                                               r"name \(known: campplus, campplus-zh-en, resemblyzer-ge2e\)$"):
        describe_model("nosuch")
    (tmp_path / "empty").mkdir()
    assert describe_model(tmp_path / "empty").path is None
    with pytest.raises(spkid.SpkidError, match="no checkpoint found in"):
        resolve_model(tmp_path / "empty")


def test_checkpoint_path_refuses_exports(exp, tmp_path):
    assert checkpoint_path(exp, "export") == exp / "checkpoints" / "step-00000003.pt"
    for name, label in (("m.onnx", "an ONNX export"), ("m.ts", "a TorchScript export")):
        (tmp_path / name).write_bytes(b"x")
        with pytest.raises(spkid.SpkidError, match=f"m.{name[2:]} is {label}, not a checkpoint: train --init needs"):
            checkpoint_path(tmp_path / name, "train --init")
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(tmp_path / "script.pt"))
    assert is_torchscript_archive(tmp_path / "script.pt") and not is_torchscript_archive(exp / "checkpoints" /
                                                                                          "step-00000001.pt")
    with pytest.raises(spkid.SpkidError, match="script.pt is a TorchScript archive, not a checkpoint .* export needs"):
        checkpoint_path(tmp_path / "script.pt", "export")


def test_commands_that_need_a_checkpoint_say_so(exp, tmp_path, run):
    (tmp_path / "m.onnx").write_bytes(b"x")
    (tmp_path / "data").mkdir()
    for args, words in ((["export", "--model", str(tmp_path / "m.onnx"), "--format", "onnx", "--output",
                          str(tmp_path / "o.onnx")], "is an ONNX export, not a checkpoint: export needs"),
                        (["export", "--model", str(exp), "--format", "torchscript", "--output", str(tmp_path / "o.pt")],
                         "o.pt: name a TorchScript export .ts or .torchscript"),
                        (["export", "--model", str(exp), "--format", "onnx", "--output", str(tmp_path / "o.bin")],
                         "o.bin: name an ONNX export .onnx"),
                        (["average-checkpoints", "--exp", str(tmp_path / "m.onnx"), "--output", str(tmp_path / "a.pt")],
                         "is an ONNX export, not an exp dir"),
                        (["train", "--data", str(tmp_path / "data"), "--output", str(tmp_path / "t"), "--init",
                          str(tmp_path / "m.onnx"), "--opts", "task", "ge2e"], "not a checkpoint: train --init needs")):
        proc = run(["spkid", *args], check=False, text=True)
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert words in proc.stderr.strip().splitlines()[-1]
    assert not (tmp_path / "t").exists() and not (tmp_path / "o.pt").exists()
