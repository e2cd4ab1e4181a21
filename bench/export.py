"""Benchmark: embedding with torch vs onnxruntime vs TorchScript on CPU, and int8 dynamic quantization.

For every registered encoder (Resemblyzer's pretrained GE2E for "ge2e"; randomly initialised
default-size models with a 64-bin fbank for the others, where only speed and agreement mean
something), the model is exported with `spkid export` to ONNX and TorchScript, and the ONNX file is
quantized to int8 with onnxruntime.quantization.quantize_dynamic (all ops it quantizes, per-channel;
and MatMul/Gemm only). Each backend embeds the same precomputed features of LibriSpeech + VCTK
utterances through `Embedder.embed_features` (windows of all utterances in batches of 256, as
`extract-embeddings` does), with the same number of threads; runs are interleaved and the best of
the repeats is shown (--quick: random models timed on 12 utterances). Columns: utterances per
second, the speed-up over torch float32, the smallest cosine with torch's embeddings, and (pretrained
GE2E only) the EER of all-pairs trials of those utterances.
Usage: python bench/export.py [--quick] [--repeats R] [--threads N] [--models ge2e,gru]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_DATA = Path(os.environ.get("SPKID_SHARED_DATA", ROOT.parent / "shared" / "data"))


def make_checkpoints(names: list[str], folder: Path) -> dict[str, str]:
    """name -> checkpoint: the pretrained GE2E, and a random default-size model for the other encoders."""
    import inspect

    import torch

    from spkid.models import model_class
    from spkid.pretrained import import_pretrained
    from spkid.train.checkpoint import save_checkpoint

    out = {}
    for name in names:
        if name == "ge2e":
            out[name] = str(import_pretrained("resemblyzer-ge2e", folder / "ge2e"))
            continue
        params = inspect.signature(model_class(name)).parameters
        config = {"feat_dim": 64} if "feat_dim" in params else {"input_dim": 64}
        torch.manual_seed(0)
        model = model_class(name)(**config)
        out[name] = str(save_checkpoint(folder / f"{name}.pt", model_name=name, model_config=config,
                                        feature_config={"type": "kaldi-fbank", "num_mel_bins": 64},
                                        state_dict=model.state_dict()))
    return out


def backends(checkpoint: str, folder: Path) -> dict[str, str]:
    """label -> model file: the checkpoint, its ONNX and TorchScript exports, and int8 ONNX files
    (every op onnxruntime quantizes dynamically, per-channel weights; and MatMul/Gemm only)."""
    from spkid.export import export_model

    onnx_path, ts_path = folder / "model.onnx", folder / "model.ts"
    export_model(checkpoint, "onnx", onnx_path)
    export_model(checkpoint, "torchscript", ts_path)
    return {"torch": checkpoint, "onnxruntime": str(onnx_path), "TorchScript": str(ts_path),
            "onnxruntime int8 (all ops)": quantize(onnx_path, folder / "int8-all.onnx", {"per_channel": True}),
            "onnxruntime int8 (MatMul/Gemm)": quantize(onnx_path, folder / "int8-matmul.onnx",
                                                       {"op_types_to_quantize": ["MatMul", "Gemm"]})}


def quantize(source: Path, output: Path, options: dict) -> str:
    """onnxruntime.quantization.quantize_dynamic to int8 weights, keeping spkid's metadata."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process the model first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_dynamic(str(source), str(output), weight_type=QuantType.QInt8, **options)
    quantized = onnx.load(str(output))
    if not any(p.key == "spkid" for p in quantized.metadata_props):
        quantized.metadata_props.extend(onnx.load(str(source)).metadata_props)
        onnx.save(quantized, str(output))
    return str(output)


def trial_eer(embs: np.ndarray, speakers: list[str]) -> float:
    from spkid.scoring.metrics import compute_eer

    target, nontarget = [], []
    for i, j in itertools.combinations(range(len(speakers)), 2):
        (target if speakers[i] == speakers[j] else nontarget).append(float(embs[i] @ embs[j]))
    return compute_eer(np.array(target), np.array(nontarget))[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer utterances and repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch and onnxruntime intra-op threads")
    parser.add_argument("--models", default=None, help="comma-separated encoder names (default: all registered)")
    args = parser.parse_args()
    import torch

    from spkid.extract import load_embedder
    from spkid.kaldi.audio import read_audio
    from spkid.models import model_names

    torch.set_num_threads(args.threads)
    repeats = args.repeats or (2 if args.quick else 3)
    per_spk = 4 if args.quick else 10
    files = [(d.name, f) for root in ("librispeech_test_other", "vctk_mini")
             for d in sorted((SHARED_DATA / root).iterdir()) if d.is_dir() for f in sorted(d.glob("*.flac"))[:per_spk]]
    waves = [read_audio(str(f)) for _, f in files]
    audio_s = sum(len(w) / r for w, r in waves)
    names = args.models.split(",") if args.models else model_names()
    print(f"## Export backends: {len(files)} utterances ({audio_s:.0f} s of audio, features precomputed), "
          f"{args.threads} thread(s), {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}; "
          f"best of {repeats} interleaved runs\n")
    print("| model | backend | utt/s | vs torch | min cosine vs torch | EER (%) |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints = make_checkpoints(names, Path(tmp))
        for name in names:
            folder = Path(tmp) / f"{name}-export"
            folder.mkdir()
            models = backends(checkpoints[name], folder)
            embedders = {label: load_embedder(path, "cpu", trust_torchscript=True) for label, path in models.items()}
            timed = waves if name == "ge2e" or not args.quick else waves[:12]  # random models: speed only
            feats = [embedders["torch"].features(w, r) for w, r in timed]
            best = {label: float("inf") for label in embedders}
            embs = {}
            for _ in range(repeats):
                for label, embedder in embedders.items():
                    start = time.perf_counter()
                    embs[label] = embedder.embed_features(feats)
                    best[label] = min(best[label], time.perf_counter() - start)
            for label in embedders:
                cosine = float(np.min(np.sum(embs[label] * embs["torch"], axis=1)))
                eer = f"{100 * trial_eer(embs[label], [s for s, _ in files]):.2f}" if name == "ge2e" else "-"
                print(f"| {name} | {label} | {len(feats) / best[label]:.1f} | {best['torch'] / best[label]:.2f}x | "
                      f"{cosine:.6f} | {eer} |", flush=True)
    print(f"\nge2e: Resemblyzer's pretrained weights; the others are random (speed and agreement only). "
          f"Load at the end: {os.getloadavg()[0]:.1f}.")


if __name__ == "__main__":
    main()
