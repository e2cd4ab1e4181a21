"""Benchmark: reading training audio from Shar shards (spkid make-shards) vs a wav.scp of single files.

On the real speech of ../shared/data (+ ../shared/speechocean762 when present): a data dir of every
utterance, written as shards by `spkid make-shards`; then utterances/s read and decoded
* from the shards, in the training order of one reading slot (shards in order, blocks shuffled), and
* from wav.scp with random access (a random permutation of the files, each opened and decoded),
with the page cache warm (second pass) and, where the machine lets us drop it (root, /proc/sys/vm), cold.
Also the disk use of the shards, of the original files and of the 80-dim float feats ark that
`spkid compute-fbank` would write, and the peak memory of a process streaming one epoch of shards of
N and of 6N utterances (it should not grow with N).
Usage: python bench/shards.py [--quick]
"""
from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("SPKID_SHARED_DATA", ROOT.parent / "shared" / "data"))
SPKID = str(Path(sys.executable).parent / "spkid")


def make_data(root: Path, limit: int | None) -> Path:
    files = sorted(SHARED.glob("*/*/*.flac")) + sorted((SHARED.parent / "speechocean762").glob("*/*.flac"))
    rng = np.random.default_rng(0)
    if limit:
        files = [files[i] for i in sorted(rng.choice(len(files), size=min(limit, len(files)), replace=False))]
    rows = sorted((f"{f.parent.name}-{f.stem}", str(f), f.parent.name) for f in files)
    root.mkdir(parents=True)
    (root / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p, _ in rows))
    (root / "utt2spk").write_text("".join(f"{u} {s}\n" for u, _, s in rows))
    return root


def drop_caches() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def read_shards(folder: Path) -> tuple[int, float, float]:
    from spkid.data.shard_stream import ShardIndex, read_audio_member, slot_stream

    start = time.perf_counter()
    index = ShardIndex(folder)
    seconds = 0.0
    for epoch, item in slot_stream(index, 0, 1, seed=0, block=512):
        if epoch > 0:
            break
        _, wave, rate = read_audio_member(folder, item)
        seconds += len(wave) / rate
    return index.num_utterances, time.perf_counter() - start, seconds


def read_files(data: Path) -> tuple[int, float, float]:
    paths = [line.split()[1] for line in (data / "wav.scp").read_text().splitlines()]
    order = np.random.default_rng(0).permutation(len(paths))
    start = time.perf_counter()
    seconds = 0.0
    for i in order:
        wave, rate = sf.read(paths[i], dtype="float32")
        seconds += len(wave) / rate
    return len(paths), time.perf_counter() - start, seconds


def du(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths if p.is_file())


def peak_rss_streaming(folder: Path) -> float:
    """Peak RSS (MiB) of a fresh process streaming one epoch of the shards (audio decoded)."""
    code = (f"import resource, sys; sys.path.insert(0, {str(ROOT)!r}); from bench.shards import read_shards; "
            f"from pathlib import Path; read_shards(Path({str(folder)!r})); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1500 utterances instead of all")
    args = parser.parse_args()
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_data(tmp / "data", 1500 if args.quick else None)
        n = len((data / "wav.scp").read_text().splitlines())
        t0 = time.perf_counter()
        subprocess.run([SPKID, "make-shards", "--data", str(data), "--output", str(tmp / "shards"),
                        "--shard-size", "500", "--nj", "2"], check=True, capture_output=True)
        make_s = time.perf_counter() - t0
        rows = []
        for cache in ("warm", "cold"):
            if cache == "warm":
                read_shards(tmp / "shards"), read_files(data)  # fill the page cache
            results = {}
            for name, fn, arg in (("shards", read_shards, tmp / "shards"), ("wav.scp", read_files, data)):
                if cache == "cold" and not drop_caches():
                    break
                results[name] = fn(arg)
            if len(results) == 2:
                (ns, ts, secs), (nf, tf, _) = results["shards"], results["wav.scp"]
                rows.append(f"| {cache} | {ns / ts:,.0f} | {nf / tf:,.0f} | {(ns / ts) / (nf / tf):.2f}x | "
                            f"{secs / ts:,.0f} |")
            else:
                rows.append(f"| {cache} | not measured: the page cache cannot be dropped here | | | |")
        print(f"\n## Reading training audio: {n} utterances (load {load:.1f}); make-shards --nj 2: {make_s:.1f} s\n")
        print("| page cache | shards utt/s | wav.scp random access utt/s | shards speed-up | shards audio s/s |")
        print("|---|---|---|---|---|")
        print("\n".join(rows))
        flac = du([Path(line.split()[1]) for line in (data / "wav.scp").read_text().splitlines()])
        shards = du(list((tmp / "shards").rglob("*")))
        audio_s = read_shards(tmp / "shards")[2]
        frames = audio_s * 100  # 10 ms shift
        ark = frames * 80 * 4 + n * 30  # float32 80-dim + per-utterance header
        print("\n| storage | MiB | per hour of audio, GiB |")
        print("|---|---|---|")
        for name, size in (("original FLAC files", flac), ("shards (FLAC in tar)", shards),
                           ("80-dim float feats ark (computed size)", ark)):
            print(f"| {name} | {size / 2**20:,.1f} | {size / 2**30 / (audio_s / 3600):.2f} |")
        small = tmp / "small"
        make_data(small / "data", max(50, n // 6))
        subprocess.run([SPKID, "make-shards", "--data", str(small / "data"), "--output", str(small / "shards"),
                        "--shard-size", "500"], check=True, capture_output=True)
        print("\n| streaming shards | utterances | peak RSS MiB |")
        print("|---|---|---|")
        for folder in (small / "shards", tmp / "shards"):
            count = sum(1 for _ in open(folder / "utt2spk"))
            print(f"| one epoch | {count} | {peak_rss_streaming(folder):.0f} |")
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}; own peak RSS "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
