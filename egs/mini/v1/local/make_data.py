#!/usr/bin/env python3
"""Build Kaldi data dirs from a folder of audio: the speaker is each file's parent folder name.

Usage: local/make_data.py [--test-per-speaker K] [--heldout-speakers H] [--open-per-speaker U] [--seed S]
                          [--speaker-depth N] DATA_ROOT OUT_DIR

With --speaker-depth N the speaker is the N-th folder under DATA_ROOT instead (LibriSpeech: 1).

Writes OUT_DIR/all (every file), OUT_DIR/train and OUT_DIR/test (K held-out utterances of each
training speaker) and OUT_DIR/test/trials (every pair of test utterances: target|nontarget: closed
set, the speakers were trained on), sorted LC_ALL=C. With --heldout-speakers H, H speakers are kept
out of train and test altogether, drawn from every corpus (the first folder under DATA_ROOT) in
proportion to its speakers, and OUT_DIR/test_open holds up to U utterances of each of them with
OUT_DIR/test_open/trials (every pair: open set, speakers never seen in training).
Utterance ids are `<speaker>-<file stem>` unless the stem already starts with the speaker.
"""
import argparse
import itertools
import os
import random
import sys
from pathlib import Path

AUDIO = (".wav", ".flac")


def scan(root: Path, depth: int = 0) -> dict[str, list[tuple[str, Path]]]:
    by_spk: dict[str, list[tuple[str, Path]]] = {}
    origin: dict[str, Path] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO and p.is_file()):
        parts = path.relative_to(root).parts
        if depth and len(parts) <= depth:
            continue
        spk = parts[depth - 1] if depth else path.parent.name
        folder = root.joinpath(*parts[:depth]) if depth else path.parent
        if origin.setdefault(spk, folder) != folder:
            sys.exit(f"make_data.py: speaker '{spk}' appears in {origin[spk]} and {folder}; rename one")
        utt = path.stem if path.stem.startswith(spk) else f"{spk}-{path.stem}"
        by_spk.setdefault(spk, []).append((utt, Path(os.path.abspath(path))))  # symlinks kept
    return by_spk


def corpus_of(root: Path, by_spk: dict[str, list[tuple[str, Path]]], spk: str) -> str:
    """The first folder under root of a speaker's files (its corpus), or '' for a flat root."""
    parts = by_spk[spk][0][1].relative_to(os.path.abspath(root)).parts
    return parts[0] if len(parts) > 2 else ""


def pick_heldout(root: Path, by_spk: dict[str, list[tuple[str, Path]]], count: int, rng: random.Random) -> set[str]:
    """`count` speakers from every corpus in proportion to its speakers (at least one from each corpus
    that has two or more), drawn with `rng`."""
    corpora: dict[str, list[str]] = {}
    for spk in sorted(by_spk):
        corpora.setdefault(corpus_of(root, by_spk, spk), []).append(spk)
    total = len(by_spk)
    quota = {c: max(1 if len(s) > 1 else 0, round(count * len(s) / total)) for c, s in corpora.items()}
    while sum(quota.values()) > count:  # trim the largest quota first
        quota[max(quota, key=lambda c: (quota[c], c))] -= 1
    while sum(quota.values()) < count:  # add where the most speakers remain
        quota[max(quota, key=lambda c: (len(corpora[c]) - quota[c], c))] += 1
    return {spk for c, spks in sorted(corpora.items()) for spk in rng.sample(spks, min(quota[c], len(spks) - 1))}


def write_trials(path: Path, rows: list[tuple[str, str, Path]]) -> int:
    rows = sorted(rows, key=lambda r: r[1].encode())
    with open(path, "w") as f:
        for a, b in itertools.combinations(rows, 2):
            f.write(f"{a[1]} {b[1]} {'target' if a[0] == b[0] else 'nontarget'}\n")
    return len(rows) * (len(rows) - 1) // 2


def write_dir(out: Path, rows: list[tuple[str, str, Path]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = sorted(rows, key=lambda r: r[1].encode())
    (out / "wav.scp").write_text("".join(f"{u} {p}\n" for _, u, p in rows))
    (out / "utt2spk").write_text("".join(f"{u} {s}\n" for s, u, _ in rows))
    spk2utt: dict[str, list[str]] = {}
    for s, u, _ in rows:
        spk2utt.setdefault(s, []).append(u)
    (out / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items(),
                                                                                       key=lambda x: x[0].encode())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_root", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--test-per-speaker", type=int, default=3)
    parser.add_argument("--heldout-speakers", type=int, default=0)
    parser.add_argument("--open-per-speaker", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speaker-depth", type=int, default=0)
    args = parser.parse_args()
    if not args.data_root.is_dir():
        sys.exit(f"make_data.py: {args.data_root} is not a directory")
    by_spk = scan(args.data_root, args.speaker_depth)
    if len(by_spk) < 2:
        sys.exit(f"make_data.py: found {len(by_spk)} speaker folders with .wav/.flac files in {args.data_root}")
    rng = random.Random(args.seed)
    heldout = pick_heldout(args.data_root, by_spk, args.heldout_speakers, random.Random(args.seed + 1)) \
        if args.heldout_speakers else set()
    train, test, test_open = [], [], []
    for spk, items in sorted(by_spk.items()):
        if spk in heldout:
            for i in sorted(rng.sample(range(len(items)), min(args.open_per_speaker, len(items)))):
                test_open.append((spk, *items[i]))
            continue
        held = set(rng.sample(range(len(items)), min(args.test_per_speaker, len(items) - 1)))
        for i, (utt, path) in enumerate(items):
            (test if i in held else train).append((spk, utt, path))
    write_dir(args.out_dir / "all", train + test + test_open)
    write_dir(args.out_dir / "train", train)
    write_dir(args.out_dir / "test", test)
    trials = write_trials(args.out_dir / "test" / "trials", test)
    print(f"make_data.py: {len(by_spk) - len(heldout)} training speakers, {len(train)} train and {len(test)} "
          f"closed-set test utterances ({trials} trials) in {args.out_dir}")
    if heldout:
        write_dir(args.out_dir / "test_open", test_open)
        trials = write_trials(args.out_dir / "test_open" / "trials", test_open)
        print(f"make_data.py: {len(heldout)} held-out speakers ({' '.join(sorted(heldout))}), {len(test_open)} "
              f"open-set test utterances ({trials} trials) in {args.out_dir}/test_open")

if __name__ == "__main__":
    main()
