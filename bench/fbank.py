"""Benchmark: Kaldi fbank throughput of spkid against kaldi-native-fbank, lhotse and torchaudio.

Seconds of audio per second of compute (higher is better) on real speech from ../shared/data,
with every implementation given the same Kaldi options (dither 0, so outputs are comparable) and
its agreement with spkid printed beside. Two tables:

1. features from decoded, in-memory audio (the feature code alone);
2. files to an ark,scp (decode + features + write): spkid's `compute-fbank` library path
   (`compute_table`, as `spkid compute-fbank --num-threads N` runs it, without interpreter start-up)
   against the same pipeline built on each peer (soundfile decode, peer features, kaldiio writer).

"1 thread" limits BLAS and torch to one thread; "N threads" gives each implementation its best of a
thread pool over utterances and (torch-based peers) torch's own intra-op threads. All runs are
interleaved and repeated; the tables show the best run, the median in parentheses.
Usage: python bench/fbank.py [--quick] [--repeats R] [--threads N] [--dataset NAME]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_DATA = Path(os.environ.get("SPKID_SHARED_DATA", ROOT.parent / "shared" / "data"))


@contextmanager
def limited(threads: int | None):
    """BLAS (threadpoolctl, when installed) and torch limited to `threads`; None: their defaults."""
    import torch

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        threadpool_limits = None
    before = torch.get_num_threads()
    torch.set_num_threads(threads or os.cpu_count() or 1)
    ctx = threadpool_limits(threads) if threadpool_limits is not None and threads else nullcontext()
    try:
        with ctx:
            yield
    finally:
        torch.set_num_threads(before)


def implementations(opts) -> dict:
    """name -> wave (float in [-1, 1)) -> (frames, bins) float32, or a string saying why it is absent."""
    import kaldi_native_fbank as knf
    import torch

    from spkid.features.fbank import KaldiFbank, knf_options

    scale = np.float32(32768.0)
    out: dict = {"spkid": KaldiFbank(opts)}
    knf_opts = knf_options(opts)

    def kaldi_native_fbank(wave):  # the documented use: accept_waveform, then get_frame per frame
        fb = knf.OnlineFbank(knf_opts)
        fb.accept_waveform(opts.sample_frequency, wave * scale)
        fb.input_finished()
        return np.stack([fb.get_frame(i) for i in range(fb.num_frames_ready)])

    out["kaldi-native-fbank"] = kaldi_native_fbank
    from lhotse import Fbank, FbankConfig

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lhotse_fbank = Fbank(FbankConfig(
            sampling_rate=int(opts.sample_frequency), frame_length=opts.frame_length / 1000,
            frame_shift=opts.frame_shift / 1000, dither=0.0, snip_edges=True, energy_floor=0.0,
            low_freq=opts.low_freq, high_freq=opts.high_freq, num_filters=opts.num_mel_bins,
            window_type=opts.window_type, preemph_coeff=opts.preemphasis_coefficient))
    out["lhotse Fbank"] = lambda wave: lhotse_fbank.extract(wave * scale, int(opts.sample_frequency))
    try:
        from torchaudio.compliance import kaldi as ta_kaldi
    except ImportError:
        out["torchaudio kaldi.fbank"] = "not installed"
    else:
        def torchaudio_fbank(wave):
            with torch.inference_mode():
                return ta_kaldi.fbank(torch.from_numpy(wave * scale)[None], num_mel_bins=opts.num_mel_bins,
                                      dither=0.0, energy_floor=0.0, sample_frequency=opts.sample_frequency,
                                      low_freq=opts.low_freq, high_freq=opts.high_freq, snip_edges=True).numpy()
        out["torchaudio kaldi.fbank"] = torchaudio_fbank
    return out


def run_features(fn, waves, threads: int, mode: str) -> float:
    """Seconds to compute features of all waves: mode 'pool' (threads over utterances) or 'intra'."""
    start = time.perf_counter()
    with limited(1 if mode == "pool" else threads):
        if mode == "pool" and threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                for _ in pool.map(fn, waves):
                    pass
        else:
            for wave in waves:
                fn(wave)
    return time.perf_counter() - start


def run_pipeline(fn, files, threads: int, workdir: Path) -> float:
    """A peer's compute-fbank: decode, features, kaldiio ark,scp writer; in input order."""
    import kaldiio
    import soundfile as sf

    def one(path):
        return fn(sf.read(path, dtype="float32")[0])

    start = time.perf_counter()
    with limited(1), kaldiio.WriteHelper(f"ark,scp:{workdir}/peer.ark,{workdir}/peer.scp") as writer:
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                for (utt, _), feats in zip(files, pool.map(one, [p for _, p in files])):
                    writer(utt, feats)
        else:
            for utt, path in files:
                writer(utt, one(path))
    return time.perf_counter() - start


def run_spkid_table(opts, wav_scp: Path, threads: int, workdir: Path) -> float:
    from spkid.features.compute import compute_table
    from spkid.features.frontend import FbankFrontend

    start = time.perf_counter()
    with limited(1):
        log, _ = compute_table(f"scp:{wav_scp}", f"ark,scp:{workdir}/spkid.ark,{workdir}/spkid.scp",
                               FbankFrontend(opts), opts.sample_frequency, num_threads=threads)
    assert not log.failures, log.failures[:3]
    return time.perf_counter() - start


def fmt(durations: list[float], audio_s: float) -> str:
    speeds = [audio_s / d for d in durations]
    return f"{max(speeds):,.0f} ({statistics.median(speeds):,.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 utterances, 2 repeats")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="'all threads' (default: cores)")
    parser.add_argument("--dataset", default="librispeech_test_other")
    parser.add_argument("--bins", type=int, default=80)
    args = parser.parse_args()
    import soundfile as sf

    from spkid.features.fbank import FbankOptions

    repeats = args.repeats or (2 if args.quick else 5)
    paths = sorted((SHARED_DATA / args.dataset).glob("*/*.flac"))[: 30 if args.quick else None]
    if not paths:
        sys.exit(f"no audio under {SHARED_DATA / args.dataset} (set SPKID_SHARED_DATA)")
    files = [(p.stem, str(p)) for p in paths]
    waves = [sf.read(p, dtype="float32")[0] for _, p in files]
    rate = sf.info(files[0][1]).samplerate
    audio_s = sum(len(w) for w in waves) / rate
    opts = FbankOptions(sample_frequency=float(rate), num_mel_bins=args.bins, dither=0.0)
    impls = implementations(opts)
    print(f"## compute-fbank: {args.dataset}, {len(waves)} utterances, {audio_s:.0f} s of audio, "
          f"{args.bins} bins, dither 0; {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}; "
          f"best of {repeats} interleaved runs (median)\n")

    ref = [impls["spkid"](w) for w in waves]
    agree = {}
    for name, fn in impls.items():
        if callable(fn) and name != "spkid":
            diffs = [np.abs(np.asarray(fn(w)) - r) for w, r in zip(waves, ref)]
            agree[name] = (max(d.max() for d in diffs), float(np.mean([d.mean() for d in diffs])))

    n = args.threads
    feat_times = {(name, t): [] for name in impls for t in ("1", "N")}
    modes = {name: ("pool", "intra") if name not in ("spkid", "kaldi-native-fbank") else ("pool",) for name in impls}
    best_mode: dict = {}
    for _ in range(repeats):
        for name, fn in impls.items():
            if not callable(fn):
                continue
            feat_times[(name, "1")].append(run_features(fn, waves, 1, "pool"))
            times = {mode: run_features(fn, waves, n, mode) for mode in modes[name]}
            mode = min(times, key=times.get)
            feat_times[(name, "N")].append(times[mode])
            best_mode.setdefault(name, {}).setdefault(mode, 0)
            best_mode[name][mode] += 1

    print("### Features from in-memory audio (seconds of audio per second)\n")
    print(f"| implementation | 1 thread | {n} threads | spkid speed-up (1 / {n}) | max abs diff vs spkid "
          "| mean abs diff |")
    print("|---|---|---|---|---|---|")
    s1, sn = max(audio_s / d for d in feat_times[("spkid", "1")]), max(audio_s / d for d in feat_times[("spkid", "N")])
    for name, fn in impls.items():
        if not callable(fn):
            print(f"| {name} | {fn} | | | | |")
            continue
        p1 = max(audio_s / d for d in feat_times[(name, "1")])
        pn = max(audio_s / d for d in feat_times[(name, "N")])
        how = "" if name in ("spkid", "kaldi-native-fbank") else f" [{max(best_mode[name], key=best_mode[name].get)}]"
        diff = "reference | reference" if name == "spkid" else f"{agree[name][0]:.1e} | {agree[name][1]:.1e}"
        print(f"| {name} | {fmt(feat_times[(name, '1')], audio_s)} | {fmt(feat_times[(name, 'N')], audio_s)}{how} "
              f"| {s1 / p1:.2f}x / {sn / pn:.2f}x | {diff} |")

    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        wav_scp = workdir / "wav.scp"
        files = sorted(files, key=lambda f: f[0].encode())
        wav_scp.write_text("".join(f"{u} {p}\n" for u, p in files))
        table_times = {(name, t): [] for name in impls for t in (1, n)}
        for _ in range(repeats):
            for t in (1, n):
                table_times[("spkid", t)].append(run_spkid_table(opts, wav_scp, t, workdir))
                for name, fn in impls.items():
                    if callable(fn) and name != "spkid":
                        table_times[(name, t)].append(run_pipeline(fn, files, t, workdir))
        cli = time_cli(wav_scp, workdir, n, args.bins)
    print("\n### Files to ark,scp: decode + features + write (seconds of audio per second)\n")
    print(f"| pipeline | 1 thread | {n} threads | spkid speed-up (1 / {n}) |")
    print("|---|---|---|---|")
    s1 = max(audio_s / d for d in table_times[("spkid", 1)])
    sn = max(audio_s / d for d in table_times[("spkid", n)])
    for name, fn in impls.items():
        if not callable(fn):
            continue
        label = "spkid compute-fbank (compute_table)" if name == "spkid" else f"soundfile + {name} + kaldiio"
        p1 = max(audio_s / d for d in table_times[(name, 1)])
        pn = max(audio_s / d for d in table_times[(name, n)])
        print(f"| {label} | {fmt(table_times[(name, 1)], audio_s)} | {fmt(table_times[(name, n)], audio_s)} "
              f"| {s1 / p1:.2f}x / {sn / pn:.2f}x |")
    print(f"\n`spkid compute-fbank --num-threads {n}` as a command, start-up included: {audio_s / cli:,.0f} s/s "
          f"({cli:.2f} s for {audio_s:.0f} s of audio). Load average at the end: {os.getloadavg()[0]:.1f}.")


def time_cli(wav_scp: Path, workdir: Path, threads: int, bins: int) -> float:
    import subprocess

    spkid = Path(sys.executable).parent / "spkid"
    start = time.perf_counter()
    subprocess.run([str(spkid), "compute-fbank", "--dither=0", f"--num-mel-bins={bins}", f"--num-threads={threads}",
                    f"scp:{wav_scp}", f"ark,scp:{workdir}/cli.ark,{workdir}/cli.scp"], check=True,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
