"""spkid.inference.load_embedder, the one door: the loader is picked by extension and explicit intent, never by
content. A TorchScript file whose load writes a file (reliability bug 1) named `model.pt` is run by no command,
nor by the Python API, nor when a speaker database names it; a `.ts` runs only with --trust-torchscript, with
a warning. A TorchScript export without parameters embeds every utterance (bug 16)."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

import spkid
from spkid.train.checkpoint import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op thread


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tiny GE2E exp dir, its genuine TorchScript export, and two TorchScript files carrying its spkid.json:
    `payload` whose loading creates the file `marker` (as the bug-1 exploit does) and `noparam` whose weights
    are plain tensors (no nn.Parameter, bug 16)."""
    from spkid.export import export_model
    from spkid.models import build_model

    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    config = {"feat_dim": 40, "hidden_size": 16, "num_layers": 1, "embed_dim": 8}
    save_checkpoint(root / "exp" / "checkpoints" / "step-00000001.pt", model_name="ge2e", model_config=config,
                    state_dict=build_model("ge2e", config).state_dict(),
                    feature_config={"type": "kaldi-fbank", "num_mel_bins": 40, "dither": 0.0})
    export_model(str(root / "exp"), "torchscript", root / "real.ts")
    with zipfile.ZipFile(root / "real.ts") as archive:
        meta = archive.read(next(n for n in archive.namelist() if n.endswith("extra/spkid.json"))).decode()
    marker = root / "PWNED"

    class Payload(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.zeros(40, 8)
            self.path = str(marker)

        @torch.jit.export
        def __getstate__(self) -> tuple[torch.Tensor, str]:
            return (self.w, self.path)

        @torch.jit.export
        def __setstate__(self, s: tuple[torch.Tensor, str]) -> None:  # runs inside torch.jit.load
            self.w, self.path, self.training = s[0], s[1], False
            f = torch.from_file(self.path, shared=True, size=6, dtype=torch.uint8)  # creates the file
            f.copy_(torch.tensor([112, 119, 110, 101, 100, 10], dtype=torch.uint8))
            print(int(f.sum()))  # uses f: without it the TorchScript optimiser drops the write

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(1) @ self.w

    class NoParameters(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.randn(40, 8)  # a plain tensor: the module has no parameters

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(1) @ self.w

    torch.jit.save(torch.jit.script(Payload()), str(root / "model.pt"), _extra_files={"spkid.json": meta})
    torch.jit.save(torch.jit.script(NoParameters()), str(root / "noparam.ts"), _extra_files={"spkid.json": meta})
    torch.jit.load(str(root / "model.pt"))  # the payload works: loading it creates the marker
    assert marker.read_bytes() == b"pwned\n"
    marker.unlink()
    return {"exp": root / "exp", "real": root / "real.ts", "payload": root / "model.pt",
            "noparam": root / "noparam.ts", "marker": marker}


@pytest.fixture(scope="module")
def wav(shared_data):
    return str(sorted((shared_data / "vctk_mini").glob("*/*.flac"))[0])


def _refused(proc, marker, *words) -> str:
    text = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode()
    assert not marker.exists(), f"the TorchScript payload ran: {text}"
    assert proc.returncode == 1 and "Traceback" not in text, text
    line = text.strip().splitlines()[-1]
    assert line.startswith("Error: ") and all(w in line for w in words), line
    return line


def test_a_torchscript_pt_is_never_run_by_a_command(models, wav, tmp_path, run):
    payload, marker = str(models["payload"]), models["marker"]
    (tmp_path / "wav.scp").write_text(f"a {wav}\n")
    for args in (["extract-embeddings", "--model", payload, "--scp", str(tmp_path / "wav.scp"),
                  "--output", "ark,t:/dev/null"],
                 ["extract-embeddings", "--model", payload, "--trust-torchscript", "--scp", str(tmp_path / "wav.scp"),
                  "--output", "ark,t:/dev/null"],  # the opt-in is for .ts files only: a .pt is a checkpoint
                 ["verify", "--model", payload, "--threshold", "0.5", wav, wav],
                 ["enroll", "--model", payload, "--db", str(tmp_path / "db0"), "--speaker", "x", wav],
                 ["identify", "--model", payload, "--db", str(tmp_path / "db0"), wav],
                 ["export", "--model", payload, "--format", "onnx", "--output", str(tmp_path / "x.onnx")]):
        _refused(run(["spkid", *args], check=False, text=True), marker, payload, "TorchScript archive")
    assert not (tmp_path / "db0").exists() and not (tmp_path / "x.onnx").exists()


def test_a_torchscript_pt_is_never_run_by_the_api(models):
    with pytest.raises(spkid.SpkidError, match="is a TorchScript archive, not a checkpoint"):
        spkid.load_model(str(models["payload"]), device="cpu")
    with pytest.raises(spkid.SpkidError, match="TorchScript archive"):
        spkid.load_model(str(models["payload"]), device="cpu", trust_torchscript=True)
    assert not models["marker"].exists()


@pytest.mark.parametrize("named", ["payload.pt", "payload.ts"])
def test_a_speaker_database_never_runs_torchscript(models, wav, tmp_path, run, named):
    """model.json edited to name the payload (as .pt, or as .ts): identify, enroll and SpeakerDB.load refuse it
    before loading anything, also with --trust-torchscript (which is for a --model the user gives)."""
    db = tmp_path / "db"
    run(["spkid", "enroll", "--model", str(models["exp"]), "--db", str(db), "--speaker", "alice", wav])
    target = tmp_path / named
    target.write_bytes(models["payload"].read_bytes())
    info = json.loads((db / "model.json").read_text())
    info["model"] = str(target)
    (db / "model.json").write_text(json.dumps(info))
    marker = models["marker"]
    for args in (["identify", "--db", str(db), "--threshold", "0.5", wav],
                 ["identify", "--db", str(db), "--threshold", "0.5", "--trust-torchscript", wav],
                 ["enroll", "--db", str(db), "--speaker", "bob", wav]):
        _refused(run(["spkid", *args], check=False, text=True), marker, "model.json", "never makes spkid run")
    with pytest.raises(spkid.SpkidError, match="never makes spkid run"):
        spkid.SpeakerDB.load(db)
    assert not marker.exists()


def test_database_model_is_checked_before_loading(models, wav, tmp_path, run):
    from spkid.enroll import MODEL_FILE
    from spkid.inference import database_source

    db = tmp_path / "db"
    run(["spkid", "enroll", "--model", str(models["exp"]), "--db", str(db), "--speaker", "alice", wav])
    info = json.loads((db / MODEL_FILE).read_text())
    assert database_source(info, db / MODEL_FILE).kind == "exp-dir"
    with pytest.raises(spkid.SpkidError, match="has changed since enrollment"):
        database_source({**info, "model_sha256": "0" * 64}, db / MODEL_FILE)
    with pytest.raises(spkid.SpkidError, match="names no model"):
        database_source({k: v for k, v in info.items() if k != "model"}, db / MODEL_FILE)
    # an ONNX export of the same checkpoint serves the database; it is data, so a database may name it
    pytest.importorskip("onnxruntime")
    from spkid.export import export_model

    export_model(str(models["exp"]), "onnx", tmp_path / "model.onnx")
    assert database_source({**info, "model": str(tmp_path / "model.onnx")}, db / MODEL_FILE).kind == "onnx"


def test_torchscript_needs_the_opt_in_and_is_logged(models, wav, caplog):
    from spkid.inference import load_embedder

    with pytest.raises(spkid.SpkidError, match="runs its own code when loaded; if you trust it, pass --trust"):
        spkid.load_model(str(models["real"]), device="cpu")
    with caplog.at_level("WARNING", logger="spkid.inference"):
        exported = spkid.load_model(str(models["real"]), device="cpu", trust_torchscript=True)
    assert "loading TorchScript, which runs the code inside the file" in caplog.text
    reference = spkid.load_model(str(models["exp"]), device="cpu")
    assert exported.fingerprint == reference.fingerprint
    assert float(np.dot(exported.embed(wav), reference.embed(wav))) >= 0.9999
    assert load_embedder(str(models["real"]), "cpu", trust_torchscript=True).source.kind == "torchscript"


def test_torchscript_without_parameters_embeds_every_utterance(models, shared_data, tmp_path, run):
    """Bug 16: `next(model.parameters())` raised StopIteration in the worker and the run ended with
    'done 0 utterances, failed 0', exit 0, an empty ark, for 3 utterances in."""
    files = sorted((shared_data / "vctk_mini").glob("*/*.flac"))[:3]
    (tmp_path / "wav.scp").write_text("".join(f"u{i} {f}\n" for i, f in enumerate(files)))
    proc = run(["spkid", "extract-embeddings", "--model", str(models["noparam"]), "--trust-torchscript",
                "--scp", str(tmp_path / "wav.scp"), "--output", f"ark,t:{tmp_path}/e.txt"], text=True)
    assert "done 3 utterances, failed 0" in proc.stderr
    rows = (tmp_path / "e.txt").read_text().splitlines()
    assert [r.split()[0] for r in rows] == ["u0", "u1", "u2"]
    emb = spkid.load_model(str(models["noparam"]), device="cpu", trust_torchscript=True).embed(str(files[0]))
    assert emb.shape == (8,) and np.isclose(np.linalg.norm(emb), 1.0)
