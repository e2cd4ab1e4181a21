"""Refusals are one line (issue 22 UX 1, 4, 5): files torch refuses never carry its `weights_only=False`
advice nor its UserWarnings (a real os.system payload, a TorchScript archive, a pickle-protocol-4 file), in
load, export, average-checkpoints and import-pretrained; tampered checkpoints; `export --opset` out of
range (no Torch IR graph on stdout); `export --model x.onnx`; ONNX files onnxruntime refuses or whose
metadata is incomplete are one line at load, not tracebacks in workers."""
from __future__ import annotations

import json
import os
import pickle
import warnings
from functools import partial

import pytest
import torch

import spkid
from spkid.errors import SpkidError
from spkid.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op thread
CONFIG = {"feat_dim": 40, "hidden_size": 16, "num_layers": 1, "embed_dim": 8}
FEATURES = {"type": "kaldi-fbank", "num_mel_bins": 40, "dither": 0.0}


class Payload:
    """Runs a shell command when unpickled by a loader that allows it."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A genuine tiny GE2E checkpoint and three files torch refuses, each also as an exp dir's checkpoint."""
    from spkid.models import build_model

    root = tmp_path_factory.mktemp("refused")
    torch.manual_seed(0)
    good = save_checkpoint(root / "exp" / "checkpoints" / "step-00000001.pt", model_name="ge2e", model_config=CONFIG,
                           state_dict=build_model("ge2e", CONFIG).state_dict(), feature_config=FEATURES)
    marker = root / "PWNED"
    torch.save({"format": "spkid-checkpoint", "state_dict": Payload(marker)}, root / "system.pt")
    with open(root / "protocol4.pt", "wb") as handle:  # torch warns "Detected pickle protocol 4"
        pickle.dump({"a": Payload(marker)}, handle, protocol=4)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), str(root / "script.pt"))
    bad = {}
    for name in ("system", "protocol4", "script"):
        exp = root / f"exp_{name}" / "checkpoints"
        exp.mkdir(parents=True)
        os.link(root / f"{name}.pt", exp / "step-00000001.pt")
        bad[name] = root / f"{name}.pt"
    return {"good": good, "bad": bad, "marker": marker, "root": root}


def clean(message: str) -> None:
    assert "weights_only" not in message and "\n" not in message and "Traceback" not in message, message


def test_refused_files_carry_no_torch_advice_nor_warnings(files, tmp_path):
    from spkid.export import export_model
    from spkid.pretrained import import_pretrained
    from spkid.train.average import average_checkpoints

    for name, path in files["bad"].items():
        exp = files["root"] / f"exp_{name}"
        ckpt = exp / "checkpoints" / "step-00000001.pt"
        calls = [partial(spkid.load_model, str(path), device="cpu"), partial(spkid.load_model, str(exp), device="cpu"),
                 partial(export_model, str(path), "onnx", tmp_path / "m.onnx"),
                 partial(average_checkpoints, [ckpt], tmp_path / "avg.pt"),
                 partial(import_pretrained, "campplus", tmp_path / "cam", checkpoint=path),
                 partial(import_pretrained, "resemblyzer-ge2e", tmp_path / "ge2e", checkpoint=path)]
        for call in calls:
            with warnings.catch_warnings(record=True) as caught, pytest.raises(SpkidError) as err:
                warnings.simplefilter("always")
                call()
            clean(str(err.value))
            assert path.name in str(err.value) or str(exp) in str(err.value), str(err.value)
            assert not [w for w in caught if "torch" in str(w.filename) or "pickle" in str(w.message)], \
                [str(w.message) for w in caught]
            if name == "script":
                assert "TorchScript archive" in str(err.value)
            else:
                assert "refused" in str(err.value) or "not a readable" in str(err.value)
    assert not files["marker"].exists()


def test_import_pretrained_refusals_on_the_command_line(files, tmp_path, run):
    for name, path in files["bad"].items():
        proc = run(["spkid", "import-pretrained", "campplus", "--checkpoint", str(path), "--output",
                    str(tmp_path / name)], check=False, text=True)
        err = proc.stderr.strip()
        assert proc.returncode == 1 and len(err.splitlines()) == 1 and path.name in err, err
        clean(err)
        assert "Warning" not in err
    assert not files["marker"].exists()
    system = run(["spkid", "import-pretrained", "campplus", "--checkpoint", str(files["bad"]["system"]), "--output",
                  str(tmp_path / "s")], check=False, text=True)
    assert "executable (pickled) objects such as posix.system" in system.stderr


def tampered(files, tmp_path, edit) -> str:
    payload = torch.load(files["good"], map_location="cpu", weights_only=True)
    edit(payload)
    path = tmp_path / "tampered.pt"
    torch.save(payload, path)
    return str(path)


EDITS = {
    "wrong tensor shape": lambda p: p["state_dict"].update({"projection.weight": torch.zeros(3, 3)}),
    "no model key": lambda p: p.pop("model"),
    "no features key": lambda p: p.pop("features"),
    "state_dict a list": lambda p: p.update(state_dict=list(p["state_dict"].values())),
    "state_dict of strings": lambda p: p.update(state_dict={k: "x" for k in p["state_dict"]}),
    "model name a number": lambda p: p["model"].update(name=3),
    "config a list": lambda p: p["model"].update(config=[1, 2]),
    "config of wrong types": lambda p: p["model"]["config"].update(hidden_size="many"),
    "extraction a string": lambda p: p.update(extraction="full"),
    "features a list": lambda p: p.update(features=[1]),
    "step a string": lambda p: p.update(step="x"),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_tampered_checkpoints_are_one_line(files, tmp_path, edit):
    from spkid.export import export_model

    path = tampered(files, tmp_path, EDITS[edit])
    for call in (partial(spkid.load_model, path, device="cpu"),
                 partial(export_model, path, "onnx", tmp_path / "m.onnx")):
        with pytest.raises(SpkidError) as err:
            call()
        clean(str(err.value))
        assert "tampered.pt" in str(err.value)
    assert not (tmp_path / "m.onnx").exists()


def test_tampered_checkpoint_on_the_command_line(files, tmp_path, run, shared_data):
    path = tampered(files, tmp_path, EDITS["wrong tensor shape"])
    wav = shared_data / "vctk_mini" / "p225" / "p225_003.flac"
    proc = run(["spkid", "verify", "--model", path, "--threshold", "0.5", str(wav), str(wav)], check=False, text=True)
    err = proc.stderr.strip()
    assert proc.returncode == 1 and len(err.splitlines()) == 1 and "projection.weight" in err, err


@pytest.mark.parametrize("opset", ["3", "99"])
def test_export_opset_out_of_range(files, tmp_path, run, opset):
    proc = run(["spkid", "export", "--model", str(files["good"]), "--format", "onnx", "--opset", opset, "--output",
                str(tmp_path / "m.onnx")], check=False, text=True)
    err = proc.stderr.strip()
    assert proc.returncode == 1 and proc.stdout == "" and len(err.splitlines()) == 1, (proc.stdout[:300], err)
    assert f"opset {opset}" in err and "opsets 7 to" in err
    assert not (tmp_path / "m.onnx").exists()


def test_export_failure_prints_no_graph(files, tmp_path, capfd):
    from spkid.export import export_model

    with pytest.raises(SpkidError, match="cannot export this model to ONNX opset 7: .*not implemented"):
        export_model(str(files["good"]), "onnx", tmp_path / "m.onnx", opset=7)  # the LSTM's expand_as needs 8+
    out, _ = capfd.readouterr()
    assert "graph" not in out and out == ""


def test_export_of_an_export_says_it_is_exported(files, tmp_path):
    from spkid.export import export_model
    from spkid.inference import checkpoint_path

    export_model(str(files["good"]), "onnx", tmp_path / "m.onnx")
    with pytest.raises(SpkidError, match="is an ONNX export, not a checkpoint: export needs .*already exported"):
        checkpoint_path(tmp_path / "m.onnx", "export")
    (tmp_path / "renamed.pt").write_bytes((tmp_path / "m.onnx").read_bytes())  # an ONNX file named as a checkpoint
    with pytest.raises(SpkidError, match="renamed.pt: an ONNX model, not a checkpoint .name it .onnx"):
        spkid.load_model(str(tmp_path / "renamed.pt"), device="cpu")


def edit_metadata(source, target, edit) -> str:
    import onnx

    proto = onnx.load(str(source))
    entry = next(p for p in proto.metadata_props if p.key == "spkid")
    meta = json.loads(entry.value)
    edit(meta)
    entry.value = json.dumps(meta)
    onnx.save(proto, str(target))
    return str(target)


def test_onnx_files_onnxruntime_refuses_are_one_line_at_load(files, tmp_path):
    import onnx
    from onnx.external_data_helper import convert_model_to_external_data

    from spkid.export import export_model

    pytest.importorskip("onnxruntime")
    export_model(str(files["good"]), "onnx", tmp_path / "m.onnx")
    cases = {
        "no features": (lambda m: m.pop("features"), "has no 'features'"),
        "features of another dim": (lambda m: m["features"].update(num_mel_bins=30), "cannot run it on 30-dim"),
        "features a string": (lambda m: m.update(features="fbank"), "no usable front-end"),
        "extraction unknown": (lambda m: m.update(extraction={"scheme": "nope"}), "no usable front-end or extraction"),
    }
    for name, (edit, words) in cases.items():
        path = edit_metadata(tmp_path / "m.onnx", tmp_path / f"{name.replace(' ', '_')}.onnx", edit)
        with pytest.raises(SpkidError) as err:
            spkid.load_model(path, device="cpu")
        assert words in str(err.value) and path in str(err.value), (name, str(err.value))
        clean(str(err.value))
    outside = tmp_path / "outside"
    outside.mkdir()
    for where in (str(tmp_path / "weights.bin"), "../weights.bin"):  # absolute, and outside the model's folder
        proto = onnx.load(str(tmp_path / "m.onnx"))
        convert_model_to_external_data(proto, all_tensors_to_one_file=True, location="weights.bin", size_threshold=0)
        onnx.save(proto, str(tmp_path / "ext.onnx"))  # writes tmp_path/weights.bin
        for tensor in proto.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = where
        path = outside / "ext.onnx"
        with open(path, "wb") as handle:
            handle.write(proto.SerializeToString())
        with pytest.raises(SpkidError) as err:
            spkid.load_model(str(path), device="cpu")
        assert "ext.onnx" in str(err.value)
        clean(str(err.value))
