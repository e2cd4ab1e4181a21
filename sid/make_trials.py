#!/usr/bin/env python3
"""Random verification trials from a Kaldi data dir, for corpora without an official list.

Usage: sid/make_trials.py [--targets N] [--nontargets N] [--seed S] DATA_DIR TRIALS

Writes TRIALS with lines `<enroll-utt> <test-utt> target|nontarget`: up to N distinct same-speaker
pairs and N distinct different-speaker pairs of DATA_DIR's utterances (utt2spk), drawn with seed S.
"""
import argparse
import random
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=10000)
    parser.add_argument("--nontargets", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("data_dir")
    parser.add_argument("trials")
    args = parser.parse_args()
    utt2spk = dict(line.split() for line in Path(args.data_dir, "utt2spk").read_text().splitlines())
    spk2utt: dict[str, list[str]] = {}
    for utt in sorted(utt2spk):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    multi = [s for s in sorted(spk2utt) if len(spk2utt[s]) > 1]
    if not multi or len(spk2utt) < 2:
        sys.exit(f"make_trials.py: {args.data_dir} needs two speakers and one with two utterances")
    rng = random.Random(args.seed)
    max_targets = sum(len(u) * (len(u) - 1) // 2 for u in spk2utt.values())
    total = len(utt2spk)
    max_nontargets = (total * total - sum(len(u) ** 2 for u in spk2utt.values())) // 2
    pairs: dict[tuple[str, str], str] = {}
    for label, wanted, limit in (("target", args.targets, max_targets),
                                 ("nontarget", args.nontargets, max_nontargets)):
        speakers = multi if label == "target" else sorted(spk2utt)
        goal = len(pairs) + min(wanted, limit)
        while len(pairs) < goal:
            if label == "target":
                a, b = rng.sample(spk2utt[rng.choice(speakers)], 2)
            else:
                s1, s2 = rng.sample(speakers, 2)
                a, b = rng.choice(spk2utt[s1]), rng.choice(spk2utt[s2])
            key = (min(a, b), max(a, b))
            if key not in pairs:
                pairs[key] = label
    Path(args.trials).write_text("".join(f"{a} {b} {label}\n" for (a, b), label in pairs.items()))
    print(f"make_trials.py: {sum(v == 'target' for v in pairs.values())} target and "
          f"{sum(v == 'nontarget' for v in pairs.values())} nontarget trials in {args.trials}", file=sys.stderr)


if __name__ == "__main__":
    main()
