"""Augmentation sources without a download: synthetic coloured noise, babble from a speech data dir, and
simulated RIRs, as Kaldi data dirs shaped like the MUSAN and RIRS_NOISES ones (`spkid prepare musan`):
each recording its own speaker, reco2dur, and for RIRs a Kaldi rir_list. Seeded: same seed, same files.
Audio written here lies under the data dir (DIR/wav/), 16-bit PCM, and the dir appears complete or not at all.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from spkid.augment.simulate import NOISE_COLOURS, coloured_noise, simulated_rir
from spkid.errors import SpkidError


def wav_bytes(wave: np.ndarray, rate: int) -> bytes:
    """16-bit PCM wav of float samples in [-1, 1] (peaks above are scaled down, never clipped)."""
    from spkid.kaldi.audio import kaldi_wav_bytes

    wave = np.asarray(wave, np.float64)
    peak = np.abs(wave).max() if len(wave) else 0.0
    if peak >= 1.0:
        wave = wave * (32767 / 32768 / peak)
    return kaldi_wav_bytes(wave, rate)[0]


def _audio_dir(dest: Path, audio: dict[str, tuple[np.ndarray, int]], extra: dict[str, str] | None = None) -> Path:
    """A data dir of the recordings `audio` (id -> (wave, rate)) written as DIR/wav/<id>.wav."""
    from spkid.recipes.common import write_tables_dir

    dest = Path(dest).absolute()
    files: dict[str, str | bytes] = {f"wav/{rid}.wav": wav_bytes(w, r) for rid, (w, r) in audio.items()}
    files.update(extra or {})
    durations = {rid: f"{len(w) / r:g}" for rid, (w, r) in audio.items()}
    tables = {"wav.scp": {rid: str(dest / "wav" / f"{rid}.wav") for rid in audio},
              "utt2spk": {rid: rid for rid in audio}, "utt2dur": durations, "reco2dur": durations}
    return write_tables_dir(dest, tables, files)


def synthetic_noise_dir(dest: str | Path, rate: int = 16000, count: int = 12, seconds: tuple[float, float] = (2, 6),
                        seed: int = 0, level: float = 0.1) -> Path:
    """`count` coloured noises (white, pink, brown in turn; `seconds` long at random; RMS `level`):
    a stand-in for MUSAN's noise part (ids noise-<colour>-<n>)."""
    if count < 1 or not 0 < seconds[0] <= seconds[1]:
        raise SpkidError(f"synthetic noise: need count >= 1 and 0 < min <= max seconds (got {count}, {seconds})")
    rng = np.random.default_rng(seed)
    colours = list(NOISE_COLOURS)
    audio = {}
    for n in range(count):
        colour = colours[n % len(colours)]
        length = int(rng.uniform(*seconds) * rate)
        audio[f"noise-{colour}-{n:04d}"] = (level * coloured_noise(length, colour, rng), rate)
    return _audio_dir(Path(dest), audio)


def babble_dir(source: str | Path, dest: str | Path, count: int = 50, seed: int = 0) -> Path:
    """Up to `count` recordings of a speech data dir (at most one per speaker before a second of any, drawn
    with `seed`) as a babble source like MUSAN's speech part: wav.scp names the source's own audio."""
    from spkid.augment.kaldi_datadir import wav_scp_entries
    from spkid.kaldi.audio import AudioError
    from spkid.kaldi.durations import recording_duration
    from spkid.kaldi.tables import read_text_table
    from spkid.recipes.common import write_tables_dir

    source = Path(source)
    if (source / "segments").exists():
        raise SpkidError(f"{source}: babble from a data dir with segments is not supported (whole recordings only)")
    wav = dict(wav_scp_entries(source / "wav.scp"))
    utt2spk = read_text_table(source / "utt2spk") if (source / "utt2spk").exists() else {u: u for u in wav}
    rng = np.random.default_rng(seed)
    by_spk: dict[str, list[str]] = {}
    for utt in sorted(wav):
        by_spk.setdefault(utt2spk.get(utt, utt), []).append(utt)
    queues = [list(rng.permutation(utts)) for _, utts in sorted(by_spk.items())]
    picked: list[str] = []
    while len(picked) < count and any(queues):  # one per speaker per round, speakers in random order
        for i in rng.permutation(len(queues)):
            if queues[i] and len(picked) < count:
                picked.append(str(queues[i].pop()))
    durations = {}
    for utt in picked:
        try:
            durations[utt] = recording_duration(wav[utt])
        except (AudioError, OSError, RuntimeError) as err:
            raise SpkidError(f"{source}/wav.scp: recording '{utt}': cannot read its duration ({err})") from None
    tables = {"wav.scp": {u: wav[u] for u in picked}, "utt2spk": {u: u for u in picked},
              "reco2dur": {u: f"{durations[u]:g}" for u in picked}, "utt2dur": {u: f"{durations[u]:g}" for u in picked}}
    return write_tables_dir(Path(dest), tables)


def simulated_rir_dir(dest: str | Path, rate: int = 16000, count: int = 20, seed: int = 0,
                      max_t60: float = 0.8) -> Path:
    """`count` simulated RIRs (spkid.augment.simulate.simulated_rir, peak 1) and DIR/rir_list, each RIR its own
    room (`--rir-id sim-<n> --room-id sim-<n> DIR/wav/sim-<n>.wav`), for reverberate_data_dir.py."""
    if count < 1:
        raise SpkidError(f"simulated RIRs: need count >= 1 (got {count})")
    rng = np.random.default_rng(seed)
    audio = {f"sim-{n:04d}": (simulated_rir(rate, rng, max_t60=max_t60), rate) for n in range(count)}
    dest = Path(dest).absolute()
    rir_list = "".join(f"--rir-id {rid} --room-id {rid} {dest / 'wav' / (rid + '.wav')}\n" for rid in audio)
    return _audio_dir(dest, audio, {"rir_list": rir_list})
