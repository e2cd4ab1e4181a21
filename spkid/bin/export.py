"""spkid export: an encoder as ONNX or TorchScript, with its front-end and extraction settings inside."""
from __future__ import annotations

import click


@click.command("export")
@click.option("--model", "model_path", required=True, metavar="MODEL",
              help="Checkpoint, exp dir or pretrained name (see `spkid import-pretrained --list`); not an export.")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), required=True)
@click.option("--output", required=True, metavar="FILE", help="e.g. model.onnx or model.ts (the names loaders go by)")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset.")
def main(model_path: str, fmt: str, output: str, opset: int) -> None:
    """Export the network of MODEL: (batch, frames, feat_dim) features -> (batch, dim) embeddings.

    Batch and frame axes are dynamic. The front-end config, the window layout and the model
    description are stored inside (ONNX metadata "spkid", TorchScript extra file spkid.json), so
    `spkid extract-embeddings --model FILE` and `spkid.load_model(FILE)` run the exported file
    (ONNX with onnxruntime: pip install 'spkid[onnx]') with the same features and windows. Name a
    TorchScript export .ts: it runs its own code when loaded, so commands load it only with
    --trust-torchscript (Python: trust_torchscript=True); ONNX files hold no code.

    \b
    Example:
      spkid export --model exp/ge2e --format onnx --output exp/ge2e/model.onnx
      spkid extract-embeddings --model exp/ge2e/model.onnx --scp data/test/wav.scp --output ark,scp:e.ark,e.scp
    """
    from spkid.errors import SpkidError
    from spkid.export import export_model
    from spkid.inference import checkpoint_path
    from spkid.inference.sources import ONNX_SUFFIXES, TORCHSCRIPT_SUFFIXES, file_kind

    if file_kind(output) != fmt:  # loaders go by the name: a TorchScript model.pt would be refused as a checkpoint
        suffixes = ONNX_SUFFIXES if fmt == "onnx" else TORCHSCRIPT_SUFFIXES
        what = "an ONNX" if fmt == "onnx" else "a TorchScript"
        raise SpkidError(f"{output}: name {what} export {' or '.join(suffixes)} (spkid picks the loader by extension)")
    export_model(str(checkpoint_path(model_path, "export")), fmt, output, opset)
