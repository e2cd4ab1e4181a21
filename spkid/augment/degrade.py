"""A degraded copy of a test data dir: each utterance with additive noise at a random SNR, reverberation, or
both, written as 16-bit wavs under DEST/wav/ with the same utterance ids (so the same trials apply).

Per utterance, with a Generator seeded by (seed, crc32 of its id), so a copy does not depend on the order or
on the other utterances: a kind from `kinds`, a noise recording from one of the noise dirs (cut at a random
start or repeated to the utterance's length), an SNR uniform in `snr_range`, and an RIR from the Kaldi RIR
list (or a simulated one). The mix is spkid wav-reverberate's (Kaldi's SNR: against the early reverberation
when there is an RIR; output at the input's power, aligned on the RIR's peak). DEST/utt2degradation records
`<kind> <snr or -> <noise id or -> <rir id or ->` for each utterance.
"""
from __future__ import annotations

import logging
import shutil
import zlib
from pathlib import Path

import numpy as np

from spkid.errors import FailureLog, SpkidError

logger = logging.getLogger("spkid")
KINDS = ("noise", "reverb", "noise+reverb")
COPIED = ("spk2gender", "utt2lang", "text", "trials")  # files that hold for the copy too


def degrade_data_dir(src: str | Path, dest: str | Path, noise_dirs: list[str | Path],
                     rir_list: str | Path | None = None, kinds: tuple[str, ...] = KINDS,
                     snr_range: tuple[float, float] = (0.0, 10.0), seed: int = 0) -> Path:
    """Write the degraded copy of `src` to `dest`; unreadable utterances are left out and reported (then
    SpkidError after the rest are written)."""
    from spkid.atomic import staged_dir
    from spkid.augment.reverberate import reverberate
    from spkid.augment.simulate import simulated_rir
    from spkid.augment.sources import wav_bytes
    from spkid.augment.transforms import fit_to_length, load_rir, load_source, rir_list_entries, source_recordings
    from spkid.kaldi.audio import AudioError
    from spkid.kaldi.datadir import DataDir
    from spkid.kaldi.tables import read_text_table
    from spkid.recipes.common import write_tables

    src, dest = Path(src), Path(dest).absolute()
    bad = [k for k in kinds if k not in KINDS]
    if not kinds or bad:
        raise SpkidError(f"degrade: unknown kind '{bad[0] if bad else ''}' (kinds: {', '.join(KINDS)})")
    if not snr_range[0] <= snr_range[1]:
        raise SpkidError(f"degrade: the SNR range must be MIN <= MAX dB (got {snr_range[0]}, {snr_range[1]})")
    noisy = any("noise" in k for k in kinds)
    if noisy and not noise_dirs:
        raise SpkidError("degrade: noise needs at least one noise data dir")
    sources = [(str(d), source_recordings(str(d))) for d in noise_dirs] if noisy else []
    rirs = rir_list_entries(str(rir_list)) if rir_list else ()
    if rir_list and not rirs:
        raise SpkidError(f"{rir_list}: no RIRs")
    items, problems = DataDir(src).audio_items()
    failures = FailureLog()
    for utt, reason in problems:
        failures.fail(utt, reason)
    utt2spk = read_text_table(src / "utt2spk")
    wav_scp, utt2dur, described = {}, {}, {}
    with staged_dir(dest) as tmp:
        (tmp / "wav").mkdir()
        for item in items:
            try:
                wave, rate = item.load(channel=0)
                rng = np.random.default_rng([seed, zlib.crc32(item.utt.encode())])
                kind = kinds[int(rng.integers(len(kinds)))]
                rir = rir_id = noise_id = snr = None
                if "reverb" in kind:
                    if rirs:
                        rir_id = rirs[int(rng.integers(len(rirs)))]
                        rir = load_rir(rir_id, rate)
                    else:
                        rir, rir_id = simulated_rir(rate, rng), "simulated"
                noises = []
                if "noise" in kind:
                    name, recordings = sources[int(rng.integers(len(sources)))]
                    noise_id, rx = recordings[int(rng.integers(len(recordings)))]
                    noises = [fit_to_length(load_source(rx, rate), len(wave), rng)]
                    snr = float(rng.uniform(*snr_range))
                out = reverberate(np.asarray(wave, np.float64), rate, rir=rir, noises=noises,
                                  snrs=[snr] if noises else [], start_times=[0] * len(noises))
            except (SpkidError, AudioError) as err:
                failures.fail(item.utt, f"{err} (wav.scp: {item.entry})")
                continue
            path = dest / "wav" / f"{item.utt}.wav"
            (tmp / "wav" / path.name).write_bytes(wav_bytes(out, rate))
            wav_scp[item.utt] = str(path)
            utt2dur[item.utt] = f"{len(out) / rate:g}"
            described[item.utt] = (f"{kind} {'-' if snr is None else f'{snr:.2f}'} {noise_id or '-'} "
                                   f"{Path(rir_id).stem if rir_id else '-'}")
            failures.ok()
        if not wav_scp:
            raise SpkidError(f"{src}: no utterance could be degraded")
        tables = {"wav.scp": wav_scp, "utt2dur": utt2dur, "utt2degradation": described,
                  "utt2spk": {u: utt2spk[u] for u in wav_scp if u in utt2spk}}
        for name in COPIED:
            if (src / name).is_file():
                shutil.copyfile(src / name, tmp / name)
        write_tables(tmp, tables)
    failures.finish()
    return dest
