"""VoxCeleb trial lists -> Kaldi trials, in the utterance ids of `spkid prepare voxceleb1`.

Input lines (Vox1-O cleaned `veri_test2.txt`, Vox1-E `list_test_all2.txt`, Vox1-H `list_test_hard2.txt`,
and their uncleaned versions): `<1|0> <spk>/<video>/<utt>.wav <spk>/<video>/<utt>.wav`.
Output lines: `<enroll-utt> <test-utt> target|nontarget`, in the input order (as Kaldi's recipe).
"""
from __future__ import annotations

import os
from pathlib import Path

from spkid.atomic import atomic_write_text
from spkid.errors import SpkidError, where
from spkid.kaldi.tables import read_text_table
from spkid.recipes.common import utterance_id

LABELS = {"1": "target", "0": "nontarget"}


def voxceleb_utt(corpus: str, path: str) -> tuple[str, str]:
    """(speaker, utterance id) of a trial-list path `id10270/x6uYqmx31kE/00001.wav`; ValueError if malformed."""
    parts = path.split("/")
    if len(parts) != 3 or not all(parts) or "." not in parts[2]:
        raise ValueError(path)
    speaker, video, utt = parts[0], parts[1], parts[2].rsplit(".", 1)[0]
    return speaker, utterance_id(corpus, speaker, f"{speaker}-{video}-{utt}")


def convert_voxceleb_trials(src: str | os.PathLike, dest: str | os.PathLike, corpus: str = "voxceleb1",
                            data_dir: str | os.PathLike | None = None) -> dict[str, int]:
    """Convert one list; with `data_dir`, every utterance must be in its utt2spk. Returns label counts."""
    src = str(src)
    try:
        lines = Path(src).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise SpkidError(f"{src}: cannot read trial list ({err.strerror})") from None
    known = read_text_table(Path(data_dir) / "utt2spk") if data_dir is not None else None
    out: list[str] = []
    counts = {"target": 0, "nontarget": 0}
    missing: list[tuple[int, str]] = []
    for lineno, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        try:
            if len(fields) != 3 or fields[0] not in LABELS:
                raise ValueError(line)
            (spk1, utt1), (spk2, utt2) = voxceleb_utt(corpus, fields[1]), voxceleb_utt(corpus, fields[2])
        except ValueError:
            raise SpkidError(f"{where(src, lineno)}: expected '1|0 <spk>/<video>/<utt>.wav "
                             f"<spk>/<video>/<utt>.wav', got '{line.strip()}'") from None
        label = LABELS[fields[0]]
        if (label == "target") != (spk1 == spk2):
            raise SpkidError(f"{where(src, lineno)}: a {label} trial between speakers {spk1} and {spk2}")
        if known is not None:
            missing += [(lineno, u) for u in (utt1, utt2) if u not in known]
        counts[label] += 1
        out.append(f"{utt1} {utt2} {label}\n")
    if not out:
        raise SpkidError(f"{src}: no trials")
    if missing:
        lineno, utt = missing[0]
        raise SpkidError(f"{where(src, lineno)}: utterance '{utt}' is not in {Path(data_dir) / 'utt2spk'} "
                         f"({len(missing)} trial utterances missing; was the whole corpus prepared?)")
    atomic_write_text(dest, "".join(out))
    return counts
