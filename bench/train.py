"""Benchmark: training steps/s and the share of time a step waits for data (loader stall).

GE2E (`spkid train-ge2e`) and, when present, Deep Speaker softmax pre-training
(`spkid train-deepspeaker`) on the real speech of ../shared/data (librispeech_test_other + vctk_mini:
14 speakers), each with features computed on the fly from audio (a data dir with only wav.scp:
AudioSource, lhotse cuts) and from precomputed features (feats.scp from `spkid compute-fbank`,
+ vad.scp from `spkid compute-vad` for Deep Speaker). Every run is the real command line in its own
process; steps/s and the stall share are read from the trainer's own log windows (`steps_per_s`,
`data_wait_share`), the first window (worker start-up) left out. Batches are smaller than the
recipes' so that a run takes seconds on a CPU; the model sizes are the recipes'. One more Deep Speaker
run augments every crop on the fly (`augment:`: noise, babble, reverberation, speed as new speakers,
SpecAugment; sources made by spkid.augment.sources in the temporary folder) at the default 2 workers.
With a CUDA device (`--device cuda`), also fp32 vs AMP bf16 and DDP scaling over the visible GPUs.
Usage: python bench/train.py [--quick] [--steps S] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SPKID_SHARED_DATA", ROOT.parent / "shared" / "data"))
SPKID = str(Path(sys.executable).parent / "spkid")
LOG_LINE = re.compile(r"step (\d+): .*data_wait_share=([\d.e+-]+) steps_per_s=([\d.e+-]+)")

GE2E = ["data.speakers_per_batch", "4", "data.utterances_per_speaker", "5"]
DEEPSPEAKER = ["model.name", "rescnn_small", "classification.batch_size", "16"]


def augment_opts(root: Path, audio: Path) -> list[str]:
    """--opts of the augmented run: synthetic noises, simulated RIRs and babble of the training audio."""
    from spkid.augment.sources import babble_dir, simulated_rir_dir, synthetic_noise_dir

    noise = synthetic_noise_dir(root / "noise", count=6)
    rirs = simulated_rir_dir(root / "rirs", count=10)
    babble = babble_dir(audio, root / "babble", count=30)
    values = {"prob": 0.6, "snr_uniform": True, "noise_prob": 0.5, "noise_dir": noise, "noise_snrs": "[0, 15]",
              "babble_prob": 0.3, "babble_dir": babble, "babble_snrs": "[13, 20]", "reverb_prob": 0.4,
              "rir_list": rirs / "rir_list", "speed_prob": 0.67, "speed_as_new_speakers": True,
              "specaugment.prob": 0.5}
    return [x for k, v in values.items() for x in (f"augment.{k}", str(v).lower() if isinstance(v, bool) else str(v))]


def make_data(root: Path) -> Path:
    """A data dir with only wav.scp, utt2spk, spk2utt (14 speakers x 10 utterances)."""
    entries = []
    for dataset in ("librispeech_test_other", "vctk_mini"):
        for path in sorted((SHARED_DATA / dataset).glob("*/*.flac")):
            spk = path.parent.name
            utt = path.stem if path.stem.startswith(spk) else f"{spk}-{path.stem}"
            entries.append((spk, utt, path))
    if not entries:
        sys.exit(f"no audio under {SHARED_DATA} (set SPKID_SHARED_DATA)")
    entries.sort(key=lambda e: e[1].encode())
    root.mkdir(parents=True)
    (root / "wav.scp").write_text("".join(f"{u} {p}\n" for _, u, p in entries))
    (root / "utt2spk").write_text("".join(f"{u} {s}\n" for s, u, _ in entries))
    spk2utt: dict[str, list[str]] = {}
    for s, u, _ in entries:
        spk2utt.setdefault(s, []).append(u)
    (root / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))
    return root


def with_features(audio_dir: Path, out: Path, bins: int, vad: bool) -> Path:
    """A copy of `audio_dir` with feats.scp (dither 0, as the recipes) and optionally vad.scp."""
    shutil.copytree(audio_dir, out)
    conf = out / "fbank.conf"
    conf.write_text(f"--num-mel-bins={bins}\n--dither=0\n")
    run([SPKID, "compute-fbank", "--config", str(conf), "--num-threads=0", "--data", str(out),
         f"ark,scp:{out}/feats.ark,{out}/feats.scp"])
    if vad:
        run([SPKID, "compute-vad", "--fbank-config", str(conf), "--data", str(out),
             f"ark,scp:{out}/vad.ark,{out}/vad.scp"])
    return out


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{' '.join(cmd[:2])} failed ({proc.returncode}): {tail}")
    return proc


def train(command: str, data: Path, exp: Path, steps: int, every: int, device: str, opts: list[str],
          nprocs: int = 1) -> tuple[float, float]:
    """(steps/s, share of time waiting for data) over the log windows after the first."""
    run([SPKID, command, "--data", str(data), "--output", str(exp), "--device", device, "--nprocs", str(nprocs),
         "--opts", "train.max_steps", str(steps), "train.log_every", str(every), "train.checkpoint_every", "100000",
         "train.valid_every", "0", *opts])
    windows = [(int(m[1]), float(m[2]), float(m[3])) for m in LOG_LINE.finditer((exp / "train.log").read_text())]
    windows = windows[1:] or windows
    seconds = [every / s for _, _, s in windows]
    wait = sum(share * t for (_, share, _), t in zip(windows, seconds))
    return every * len(windows) / sum(seconds), wait / sum(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps")
    parser.add_argument("--steps", type=int, default=None, help="steps per run (default 16, quick 8)")
    parser.add_argument("--repeats", type=int, default=None, help="runs of each (default 2, quick 1); best shown")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    repeats = args.repeats or (1 if args.quick else 2)
    steps = args.steps or (8 if args.quick else 16)
    every = max(1, steps // 4)
    has_ds = (ROOT / "spkid" / "tasks" / "classification.py").exists()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        audio = make_data(tmp / "audio")
        feats40 = with_features(audio, tmp / "feats40", 40, vad=False)
        feats64 = with_features(audio, tmp / "feats64", 64, vad=True) if has_ds else None
        shards = tmp / "shards"
        run([SPKID, "make-shards", "--data", str(audio), "--output", str(shards), "--shard-size", "20"])
        print(f"## Training on {len(audio.joinpath('utt2spk').read_text().splitlines())} utterances of 14 speakers, "
              f"{steps} steps per run, logged every {every} (first window left out), best of {repeats} alternating "
              f"runs; {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}\n")
        print("| recipe | features | device | steps/s | waiting for data |")
        print("|---|---|---|---|---|")
        runs = [("GE2E 3x256 LSTM, 4 spk x 5 utt", "train-ge2e", GE2E, [("on the fly (wav.scp)", audio),
                                                                        ("precomputed (feats.scp)", feats40),
                                                                        ("shards (make-shards)", shards)])]
        if has_ds:
            runs.append(("Deep Speaker rescnn_small softmax, batch 16", "train-deepspeaker", DEEPSPEAKER,
                         [("on the fly (wav.scp)", audio), ("precomputed (feats.scp + vad.scp)", feats64),
                          ("shards (make-shards)", shards)]))
            runs.append(("Deep Speaker rescnn_small softmax, batch 16, augmented", "train-deepspeaker",
                         DEEPSPEAKER + augment_opts(tmp / "sources", audio),
                         [("on the fly (wav.scp) + noise, babble, reverb, speed, SpecAugment", audio)]))
        results: dict = {}
        for rep in range(repeats):  # the sources alternate, so that changing load hits both alike
            for number, (name, command, opts, sources) in enumerate(runs):
                for label, data in sources:
                    key = (name, label)
                    if isinstance(results.get(key), str):
                        continue
                    try:
                        exp = tmp / f"exp-{number}-{command}-{data.name}-{rep}"
                        got = train(command, data, exp, steps, every, "cpu", opts)
                    except RuntimeError as err:
                        results[key] = f"failed: {err}"
                        continue
                    results[key] = max(results.get(key, got), got)  # the faster run
        for (name, label), got in results.items():
            if isinstance(got, str):
                print(f"| {name} | {label} | cpu | {got} | |")
            else:
                print(f"| {name} | {label} | cpu | {got[0]:.2f} | {got[1]:.1%} |")
        if not has_ds:
            print("| Deep Speaker | | | not available (spkid/tasks/classification.py missing) | |")
        gpu_rows(tmp, feats40, steps, every, args.device)
        print(f"\nLoad average at the end: {os.getloadavg()[0]:.1f}.")


def gpu_rows(tmp: Path, feats: Path, steps: int, every: int, device: str) -> None:
    """fp32 vs AMP bf16, and DDP over 1..N GPUs (GE2E, precomputed features), where CUDA exists."""
    import torch

    if device != "cuda" or not torch.cuda.is_available():
        print("| GE2E AMP bf16 / DDP scaling | | cuda | no CUDA device (run with --device cuda on a GPU machine) | |")
        return
    big = ["data.speakers_per_batch", "14", "data.utterances_per_speaker", "8"]
    for amp in ("false", "true"):
        rate, stall = train("train-ge2e", feats, tmp / f"exp-gpu-amp{amp}", steps, every, "cuda",
                            [*big, "train.amp", amp])
        print(f"| GE2E 14 spk x 8 utt, AMP bf16 {amp} | precomputed | cuda x1 | {rate:.2f} | {stall:.1%} |")
    gpus = min(torch.cuda.device_count(), 7)  # every rank draws its own speakers: 14 in all
    if gpus < 2:
        print("| GE2E DDP scaling | | cuda | one GPU visible: no DDP rows | |")
        return
    per_gpu = ["data.speakers_per_batch", str(14 // gpus), "data.utterances_per_speaker", "8"]
    base = None
    for n in range(1, gpus + 1):
        rate, stall = train("train-ge2e", feats, tmp / f"exp-ddp{n}", steps, every, "cuda", per_gpu, nprocs=n)
        base = base or rate
        print(f"| GE2E DDP, {14 // gpus} spk x 8 utt per GPU | precomputed | cuda x{n} | {rate:.2f} "
              f"({n * rate / base:.2f}x the samples/s of 1 GPU) | {stall:.1%} |")

if __name__ == "__main__":
    main()
