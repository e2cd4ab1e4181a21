"""Benchmark: `spkid extract-embeddings` with Resemblyzer's pretrained GE2E against Resemblyzer itself.

Utterances per second and real-time factor (seconds of audio per second) of spkid's extraction
library path (`write_embeddings` to an ark,scp, as `spkid extract-embeddings` runs it, without
interpreter start-up) with the checkpoint from `spkid import-resemblyzer`, against Resemblyzer's
`VoiceEncoder.embed_utterance(preprocess_wav(path))` on the same files, with the same number of CPU
threads: spkid's worker processes (one thread each; with 1 thread, no workers) against the better of
Resemblyzer with torch intra-op threads and Resemblyzer in a process per thread. The embeddings'
agreement (minimum cosine) is printed beside; the last column relates spkid's windows/s to the
encoder's alone (random input, batches of 64, one thread per core), the bound for any float32
extractor. The last three columns: spkid with `--precision bfloat16` (autocast), its speed-up over
Resemblyzer and its agreement with Resemblyzer's float32 embeddings.
A last table gives the peak memory of extraction over 1,000 and 10,000 utterances (wav.scp
repeating the short files), each in its own process. Runs are interleaved; the tables show the
best of the repeats.

CAM++ rows (`--models campplus`, the pretrained campplus-zh-en fetched by `make pretrained`): spkid's
extraction against the same network run per utterance in plain PyTorch as 3D-Speaker's
speakerlab/bin/infer_sv.py does it (load the audio, Kaldi fbank of the float waveform, mean
subtraction, speakerlab's CAMPPlus forward under torch.no_grad, torch intra-op threads); its fbank is
lhotse's torch port of torchaudio.compliance.kaldi.fbank (torchaudio is not installed here; the
same features, tests/test_models_campplus.py). Then spkid's throughput relative to the
network alone on precomputed features (spkid's length batching, one single-threaded process per core,
all running at once), and spkid with `--precision bfloat16`: speed-up over the reference and agreement
with its float32 embeddings.
Usage: python bench/extract.py [--quick] [--repeats R] [--threads N] [--skip-memory]
                               [--models resemblyzer,campplus]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_DATA = Path(os.environ.get("SPKID_SHARED_DATA", ROOT.parent / "shared" / "data"))


def import_resemblyzer_module():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # webrtcvad: pkg_resources; resemblyzer: scipy.ndimage.morphology
        try:
            import scipy.ndimage.morphology  # noqa: F401
        except ImportError:  # removed in newer scipy: resemblyzer only takes binary_dilation from it
            import scipy.ndimage
            sys.modules["scipy.ndimage.morphology"] = scipy.ndimage
        import resemblyzer
    return resemblyzer


def write_scp(path: Path, files: list[Path], repeat_to: int | None = None) -> Path:
    """wav.scp of `files` (ids sorted as Kaldi wants), optionally cycling them to `repeat_to` entries."""
    count = repeat_to or len(files)
    lines = [f"u{i:06d}-{files[i % len(files)].stem} {files[i % len(files)]}\n" for i in range(count)]
    path.write_text("".join(sorted(lines, key=str.encode)))
    return path


def run_spkid(exp: Path, wav_scp: Path, out: Path, workers: int, threads: int,
              precision: str = "float32") -> tuple[float, dict]:
    """Seconds for the extract-embeddings library path; embeddings by utterance id."""
    import torch

    from spkid.errors import FailureLog
    from spkid.extract import load_embedder, utterances_from_scp, write_embeddings
    from spkid.kaldi.io import read_dict

    torch.set_num_threads(threads)
    embedder = load_embedder(str(exp), "cpu", precision)
    utts, problems = utterances_from_scp(str(wav_scp))
    assert not problems, problems[:3]
    failures = FailureLog()
    start = time.perf_counter()
    write_embeddings(utts, embedder, f"ark,scp:{out}.ark,{out}.scp", None, failures, num_workers=workers)
    elapsed = time.perf_counter() - start
    assert not failures.failures, failures.failures[:3]
    return elapsed, read_dict(f"scp:{out}.scp")


def run_resemblyzer(resemblyzer, encoder, files: list[Path], threads: int, mode: str, pool=None,
                    deadline: float = float("inf")) -> tuple[float, dict]:
    """Resemblyzer on `files`: mode 'intra' (torch intra-op threads) or 'procs' (a warmed-up process per
    thread, `pool`); an 'intra' run past `deadline` seconds stops and counts as infinitely slow."""
    import torch

    start = time.perf_counter()
    if mode == "procs":
        embs = pool.map(_resemblyzer_embed, files, chunksize=2)
        return time.perf_counter() - start, dict(zip(files, embs))
    torch.set_num_threads(threads)
    out = {}
    with blas_threads(threads):
        for path in files:
            out[path] = encoder.embed_utterance(resemblyzer.preprocess_wav(path))
            if time.perf_counter() - start > deadline:  # intra-op threads stalling on busy cores: mode lost
                return float("inf"), out
    return time.perf_counter() - start, out


def blas_threads(threads: int):
    """NumPy's BLAS limited to `threads` (librosa's mel product) where threadpoolctl is installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(threads)


def resemblyzer_pool(threads: int, warm_up: Path):
    """A process per thread for Resemblyzer, each with one torch thread and librosa warmed up."""
    import multiprocessing

    pool = multiprocessing.get_context("fork").Pool(threads, initializer=_resemblyzer_worker)
    pool.map(_resemblyzer_embed, [warm_up] * threads * 2, chunksize=1)
    return pool


_WORKER: dict = {}


def _resemblyzer_worker() -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["blas"] = blas_threads(1).__enter__()  # for the life of the worker
    _WORKER["module"] = import_resemblyzer_module()
    _WORKER["encoder"] = _WORKER["module"].VoiceEncoder("cpu", verbose=False)


def _resemblyzer_embed(path: Path) -> np.ndarray:
    return _WORKER["encoder"].embed_utterance(_WORKER["module"].preprocess_wav(path))


def lstm_alone(exp: Path, threads: int, seconds: float = 3.0) -> float:
    """Windows (160 frames) per second of the encoder alone, batches of 64, at `threads`."""
    import torch

    from spkid.extract import load_embedder

    torch.set_num_threads(threads)
    model = load_embedder(str(exp), "cpu").model
    x = torch.randn(64, 160, 40)
    with torch.inference_mode():
        model(x)
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            model(x)
            done += len(x)
    return done / (time.perf_counter() - start)


def count_windows(exp: Path, files: list[Path]) -> int:
    import soundfile as sf

    from spkid.extract import load_embedder
    from spkid.models.windows import partial_slices

    embedder = load_embedder(str(exp), "cpu")
    return sum(len(partial_slices(len(embedder.features(*sf.read(p, dtype="float32"))), embedder.extraction))
               for p in files)


def peak_rss(exp: Path, wav_scp: Path, out: Path, workers: int) -> dict:
    """Peak RSS (MiB) of a fresh process extracting `wav_scp`: main process and largest worker."""
    proc = subprocess.run([sys.executable, __file__, "--rss-run", str(exp), str(wav_scp), str(out), str(workers)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def own_peak_mib() -> float:
    """Peak RSS of this process since it started (VmHWM: unlike ru_maxrss, not carried over an exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_run(exp: str, wav_scp: str, out: str, workers: str) -> None:
    start = time.perf_counter()
    elapsed, embs = run_spkid(Path(exp), Path(wav_scp), Path(out), int(workers), 1)
    print(json.dumps({"main_mib": own_peak_mib(),
                      "worker_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
                      "utts": len(embs), "seconds": time.perf_counter() - start}))


def reference_campplus_fbank():
    """3D-Speaker's FBank(80, 16000, mean_nor=True) without torchaudio: lhotse's torch Kaldi fbank."""
    from lhotse.features.kaldi.layers import Wav2LogFilterBank

    sys.path.insert(0, str(ROOT / "tests"))
    from fbank_references import _lhotse_layer

    from spkid.features.fbank import FbankOptions

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = _lhotse_layer(Wav2LogFilterBank, FbankOptions(num_mel_bins=80, dither=0.0))

    def fbank(wav):
        import torch

        with torch.no_grad():
            feat = layer(wav)[0]
        return feat - feat.mean(0, keepdim=True)
    return fbank


def run_infer_sv(model, fbank, files: list[Path], threads: int) -> tuple[float, dict]:
    """infer_sv.py's compute_embedding loop: per file, load, fbank, forward (no batching)."""
    import soundfile as sf
    import torch

    from spkid.kaldi.audio import resample

    torch.set_num_threads(threads)
    out, start = {}, time.perf_counter()
    for path in files:
        wav, rate = sf.read(path, dtype="float32")
        if rate != 16000:
            wav = resample(wav, rate, 16000)
        feat = fbank(torch.from_numpy(wav)[None]).unsqueeze(0)
        with torch.no_grad():
            out[path] = model(feat).detach().squeeze(0).cpu().numpy()
    return time.perf_counter() - start, out


def campplus_forward_alone(exp: Path, feats: list, processes: int, seconds: float = 3.0) -> float:
    """Utterances per second of the network alone on precomputed features (spkid's length batching), in
    `processes` single-threaded processes running at the same time (measured, not one process times N)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(processes) as pool:
        counts = pool.starmap(_forward_alone_worker, [(str(exp), feats, seconds)] * processes)
    return sum(done / elapsed for done, elapsed in counts)


def _forward_alone_worker(exp: str, feats: list, seconds: float) -> tuple[int, float]:
    import torch

    from spkid.extract import load_embedder

    torch.set_num_threads(1)
    embedder = load_embedder(exp, "cpu")
    embedder.embed_features(feats[:4])
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        embedder.embed_features(feats)
        done += len(feats)
    return done, time.perf_counter() - start


def min_cosine(ours: dict, ref: dict, ids: dict) -> float:
    """Worst cosine between spkid's embedding (by utterance id) and the reference's (by path)."""
    return min(float(np.dot(ours[u], ref[p]) / np.linalg.norm(ours[u]) / np.linalg.norm(ref[p]))
               for p, u in ids.items())


def campplus_rows(sets: dict[str, list[Path]], tmp: Path, n: int, repeats: int) -> None:
    import soundfile as sf
    import torch
    from speakerlab.models.campplus.DTDNN import CAMPPlus

    from spkid.extract import load_embedder
    from spkid.pretrained import cached_path, import_pretrained

    weights = cached_path("campplus-zh-en")
    if not weights.is_file():
        print(f"\n(CAM++ rows skipped: {weights} absent; run `make pretrained`)")
        return
    exp = tmp / "campplus"
    import_pretrained("campplus-zh-en", exp)
    model = CAMPPlus(feat_dim=80, embedding_size=192)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    fbank = reference_campplus_fbank()
    embedder = load_embedder(str(exp), "cpu")
    print(f"\n## extract-embeddings (pretrained CAM++ zh-en, whole utterances) vs infer_sv.py's per-utterance "
          f"loop: {n} CPU cores, load {os.getloadavg()[0]:.1f}; best of {repeats} interleaved runs\n")
    print("| data | utts | audio | CPU threads | infer_sv.py loop utt/s (x real time) | spkid utt/s (x real time) "
          "| spkid speed-up | min cosine | network alone utt/s | spkid / network alone "
          "| spkid bfloat16 utt/s | bfloat16 speed-up | bfloat16 min cosine |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, files in sets.items():
        audio = sum(sf.info(p).duration for p in files)
        wav_scp = write_scp(tmp / f"cam{len(files)}.scp", files)
        ids = {p: f"u{i:06d}-{p.stem}" for i, p in enumerate(files)}
        feats = [embedder.features(*sf.read(p, dtype="float32")) for p in files]
        alone = {t: campplus_forward_alone(exp, feats, t) for t in sorted({n, 1})}
        for threads in sorted({n, 1}, reverse=True):
            workers = threads if threads > 1 else 0
            best_r = best_s = best_b = float("inf")
            for _ in range(repeats):
                t_r, ref = run_infer_sv(model, fbank, files, threads)
                best_r = min(best_r, t_r)
                t_s, ours = run_spkid(exp, wav_scp, tmp / "cam_emb", workers, 1 if workers else threads)
                best_s = min(best_s, t_s)
                t_b, bf16 = run_spkid(exp, wav_scp, tmp / "cam_emb", workers, 1 if workers else threads, "bfloat16")
                best_b = min(best_b, t_b)
            cos = min_cosine(ours, ref, ids)
            how = f"{workers} worker processes" if workers else "1 thread, no workers"
            print(f"| {name} | {len(files)} | {audio:.0f} s | {threads} "
                  f"| {len(files) / best_r:.1f} (x{audio / best_r:.0f}) [{threads} torch thread{'s' * (threads > 1)}] "
                  f"| {len(files) / best_s:.1f} (x{audio / best_s:.0f}) [{how}] | {best_r / best_s:.2f}x | {cos:.7f} "
                  f"| {alone[threads]:.1f} | {len(files) / best_s / alone[threads]:.0%} "
                  f"| {len(files) / best_b:.1f} | {best_r / best_b:.2f}x | {min_cosine(bf16, ref, ids):.5f} |")
    print(f"\nLoad at the end: {os.getloadavg()[0]:.1f}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer utterances, one run, memory at 1k/3k")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--models", default="resemblyzer,campplus",
                        help="comma-separated: resemblyzer (GE2E tables and memory), campplus")
    parser.add_argument("--rss-run", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_run:
        return rss_run(*args.rss_run)
    models = set(args.models.split(","))
    from spkid.bin.import_resemblyzer import import_resemblyzer

    resemblyzer = import_resemblyzer_module()
    repeats = args.repeats or (1 if args.quick else 2)
    n = args.threads
    sets = {"librispeech_test_other (long)": sorted((SHARED_DATA / "librispeech_test_other").glob("*/*.flac")),
            "arabic_speech_commands (1 s)": sorted((SHARED_DATA / "arabic_speech_commands").glob("*/*.flac"))}
    if not all(sets.values()):
        sys.exit(f"no audio under {SHARED_DATA} (set SPKID_SHARED_DATA)")
    limits = {"librispeech_test_other (long)": 20 if args.quick else 50,
              "arabic_speech_commands (1 s)": 100 if args.quick else 400}
    short_all = sets["arabic_speech_commands (1 s)"]
    sets = {k: v[:: max(1, len(v) // limits[k])][: limits[k]] for k, v in sets.items()}
    import soundfile as sf

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "campplus" in models:
            campplus_rows(sets, tmp, n, repeats)
        if "resemblyzer" not in models:
            return
        exp = tmp / "exp"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import_resemblyzer(exp)
        encoder = resemblyzer.VoiceEncoder("cpu", verbose=False)
        print(f"## extract-embeddings (Resemblyzer's pretrained GE2E) vs Resemblyzer: {n} CPU cores, "
              f"load {os.getloadavg()[0]:.1f}; best of {repeats} interleaved runs\n")
        encoder.embed_utterance(resemblyzer.preprocess_wav(sets["librispeech_test_other (long)"][0]))  # warm-up
        pool = resemblyzer_pool(n, sets["librispeech_test_other (long)"][0]) if n > 1 else None
        per_thread = lstm_alone(exp, 1)
        bound = {t: t * per_thread for t in sorted({1, n})}  # one single-threaded encoder per core
        print("| data | utts | audio | CPU threads | Resemblyzer utt/s (x real time) [best mode] "
              "| spkid utt/s (x real time) | spkid speed-up | min cosine | spkid / LSTM-alone bound "
              "| Resemblyzer / bound | spkid --precision bfloat16 utt/s | its speed-up | its min cosine |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for name, files in sets.items():
            audio = sum(sf.info(p).duration for p in files)
            wav_scp = write_scp(tmp / f"{len(files)}.scp", files)
            windows = count_windows(exp, files)
            ids = {p: f"u{i:06d}-{p.stem}" for i, p in enumerate(files)}
            for threads in sorted({n, 1}, reverse=True):
                workers = threads if threads > 1 else 0
                modes = ("intra", "procs") if threads > 1 else ("intra",)
                best_s, best_b, best_r, ref = float("inf"), float("inf"), {}, {}
                for _ in range(repeats):
                    for mode in reversed(modes):  # processes first: they bound the intra-op run's time
                        limit = 3 * best_r["procs"] if "procs" in best_r else float("inf")
                        t_r, got = run_resemblyzer(resemblyzer, encoder, files, threads, mode, pool, limit)
                        best_r[mode] = min(best_r.get(mode, float("inf")), t_r)
                        ref = got if len(got) == len(files) else ref
                    t_s, ours = run_spkid(exp, wav_scp, tmp / "emb", workers, 1 if workers else threads)
                    best_s = min(best_s, t_s)
                    t_b, ours_bf16 = run_spkid(exp, wav_scp, tmp / "emb_bf16", workers, 1 if workers else threads,
                                               "bfloat16")
                    best_b = min(best_b, t_b)
                cos, cos_b = min_cosine(ours, ref, ids), min_cosine(ours_bf16, ref, ids)
                mode = min(best_r, key=best_r.get)
                peer = {"intra": f"{threads} torch thread{'s' if threads > 1 else ''}",
                        "procs": f"{threads} processes"}[mode]
                how = f"{workers} worker processes" if workers else "1 thread, no workers"
                rate_r = f"{len(files) / best_r[mode]:.1f} (x{audio / best_r[mode]:.0f}) [{peer}]"
                rate_s = f"{len(files) / best_s:.1f} (x{audio / best_s:.0f}) [{how}]"
                print(f"| {name} | {len(files)} | {audio:.0f} s | {threads} | {rate_r} | {rate_s} "
                      f"| {best_r[mode] / best_s:.2f}x | {cos:.7f} | {windows / best_s / bound[threads]:.0%} "
                      f"| {windows / best_r[mode] / bound[threads]:.0%} | {len(files) / best_b:.1f} "
                      f"| {best_r[mode] / best_b:.2f}x | {cos_b:.4f} |")
        print(f"\nLSTM alone (3x256, 160-frame windows, batch 64, one thread): {per_thread:.0f} windows/s; the bound "
              "at N threads is N times that. Resemblyzer's layout has 1.3 windows per second of audio. "
              f"Load at the end: {os.getloadavg()[0]:.1f}.")
        if pool is not None:
            pool.close()
        if args.skip_memory:
            return
        print("\n### Peak memory of extraction (RSS, MiB; wav.scp cycling the 1 s files; a fresh process each)\n")
        print("| utterances | main process | largest worker | seconds |")
        print("|---|---|---|---|")
        for count in ((1000, 3000) if args.quick else (1000, 10000)):
            rss = peak_rss(exp, write_scp(tmp / f"rss{count}.scp", short_all, count), tmp / "rss", min(2, n))
            print(f"| {count:,} | {rss['main_mib']:.0f} | {rss['worker_mib']:.0f} | {rss['seconds']:.0f} |")


if __name__ == "__main__":
    main()
