"""Utterance embeddings: inputs (wav.scp, data dir, folder of audio, feats.scp) -> Kaldi ark/scp and/or a
tree of .npy files, with any model spkid.inference.load_embedder opens.

The model's own front-end computes features from audio (in DataLoader worker processes);
windows of many utterances go through the network together in large batches; results are written
as they come (memory stays flat) and each failed utterance is reported and skipped.
"""
from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from spkid.errors import NON_FINITE, FailureLog, SpkidError
from spkid.inference import PRECISIONS, Embedder, load_embedder  # noqa: F401 (spkid.extract names kept)
from spkid.kaldi.audio import AudioError, AudioItem, list_audio, read_audio

logger = logging.getLogger("spkid.extract")
CPU_CHUNK = 16  # utterances a CPU worker embeds at a time (the LSTM's speed hardly depends on the batch)


@dataclass
class Utterance:
    """One utterance to embed: audio (AudioItem) or a feature entry (`file.ark:offset`)."""

    utt: str
    audio: AudioItem | None = None
    feats_entry: str | None = None
    vad_entry: str | None = None
    npy_path: str | None = None  # relative path of its .npy in --npy-dir


class _FeatureDataset(torch.utils.data.Dataset):
    """Utterance -> (utt, features or None, error), computed in a worker process."""

    def __init__(self, utts: list[Utterance], embedder: Embedder):
        self.utts, self.embedder = utts, embedder

    def __len__(self) -> int:
        return len(self.utts)

    def __getitem__(self, i: int):
        item = self.utts[i]
        try:
            if item.feats_entry is not None:
                from spkid.features.frontend import select_voiced_and_normalise
                from spkid.kaldi.objects import load_entry

                feats = np.asarray(load_entry(item.feats_entry, key=item.utt), dtype=np.float32)
                if not np.isfinite(feats).all():
                    raise SpkidError(f"{item.feats_entry}: features have NaN or infinite values")
                voiced = load_entry(item.vad_entry, key=item.utt) if item.vad_entry is not None else None
                feats = select_voiced_and_normalise(feats, voiced, getattr(self.embedder.frontend, "cmn", False))
            else:
                wave, rate = item.audio.load()
                feats = self.embedder.features(wave, rate)
            if len(feats) == 0:
                raise SpkidError("no feature frames (audio too short)")
            expected = self.embedder.frontend.dim
            if feats.ndim != 2 or feats.shape[1] != expected:
                got = feats.shape[1] if feats.ndim == 2 else f"{feats.ndim}-axis"
                raise SpkidError(f"{item.feats_entry or 'features'}: {got}-dim features, the model expects "
                                 f"{expected}-dim (its front-end's)")
            return i, feats, None
        except (AudioError, SpkidError, OSError, ValueError) as err:
            return i, None, str(err)


class _EmbeddingDataset(torch.utils.data.Dataset):
    """Chunk k of utterances -> [(index, embedding or None, error)]: features and network in a worker.

    On CPU, worker processes with one thread each run the whole pipeline: this scales with cores
    without intra-op threads (which stall when the cores are shared) and keeps the main process free.
    """

    def __init__(self, features: _FeatureDataset, chunks: list[range], batch_size: int):
        self.features, self.chunks, self.batch_size = features, chunks, batch_size

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, k: int) -> list[tuple[int, np.ndarray | None, str | None]]:
        return embed_items([self.features[i] for i in self.chunks[k]], self.features.embedder, self.batch_size)



def embed_items(items: list, embedder: Embedder, batch_size: int) -> list[tuple[int, np.ndarray | None, str | None]]:
    """(index, features or None, error) items -> (index, embedding or None, error): the features go through
    the network together; a non-finite embedding is that utterance's failure, never a result."""
    good = [(i, f) for i, f, e in items if e is None]
    embs = embedder.embed_features([f for _, f in good], batch_size) if good else []
    by_index = {i: e for (i, _), e in zip(good, embs)}
    out = []
    for i, _, err in items:
        emb = by_index.get(i)
        if emb is not None and not np.isfinite(emb).all():
            emb, err = None, NON_FINITE
        out.append((i, emb, err))
    return out


def iter_embeddings(utts: list[Utterance], embedder: Embedder, num_workers: int = 2, batch_size: int = 256,
                    utts_per_chunk: int = 64) -> Iterator[tuple[Utterance, np.ndarray | None, str | None]]:
    """Yield (utterance, embedding, error) in input order, streaming chunk by chunk; every utterance ends
    with an embedding or an error, also when the pipeline stops early (a StopIteration escaping a worker
    ends a DataLoader as if it were done: the utterances it never returned are reported as failed).

    On a GPU (or with no workers) worker processes compute features and the windows of
    `utts_per_chunk` utterances go through the network together in the main process; on CPU each
    of `num_workers` processes embeds chunks of up to CPU_CHUNK utterances itself.
    """
    done = [False] * len(utts)
    for i, emb, err in _iter_results(utts, embedder, num_workers, batch_size, utts_per_chunk):
        done[i] = True
        if emb is None and err is None:
            err = "no embedding came back for this utterance (internal error)"
        yield utts[i], emb, err
    for i in (i for i, seen in enumerate(done) if not seen):
        yield utts[i], None, "extraction ended before this utterance (internal error; see the log)"


def _iter_results(utts: list[Utterance], embedder: Embedder, num_workers: int, batch_size: int,
                  utts_per_chunk: int) -> Iterator[tuple[int, np.ndarray | None, str | None]]:
    from tqdm import tqdm

    features = _FeatureDataset(utts, embedder)
    progress = tqdm(total=len(utts), desc="extract", unit="utt", disable=None, leave=False)
    if embedder.device.type == "cpu" and num_workers > 0:
        size = max(1, min(CPU_CHUNK, -(-len(utts) // (4 * num_workers))))  # small jobs: 4+ chunks a worker
        chunks = [range(i, min(i + size, len(utts))) for i in range(0, len(utts), size)]
        loader = torch.utils.data.DataLoader(_EmbeddingDataset(features, chunks, batch_size), batch_size=None,
                                             shuffle=False, num_workers=num_workers, prefetch_factor=2)
        for results in loader:
            yield from results
            progress.update(len(results))
        progress.close()
        return
    loader = torch.utils.data.DataLoader(features, batch_size=None, shuffle=False,
                                         num_workers=num_workers, prefetch_factor=8 if num_workers else None)
    pending: list[tuple[int, np.ndarray | None, str | None]] = []

    def flush():
        yield from embed_items(pending, embedder, batch_size)
        progress.update(len(pending))
        pending.clear()

    for item in loader:
        pending.append(item)
        if len(pending) >= utts_per_chunk:
            yield from flush()
    yield from flush()
    progress.close()


def utterances_from_scp(wav_scp: str, segments: str | os.PathLike | None = None,
                        utt2spk: dict[str, str] | None = None) -> tuple[list[Utterance], list[tuple[str, str]]]:
    items, problems = list_audio(wav_scp, segments)
    out = []
    for item in items:
        spk = (utt2spk or {}).get(item.utt)
        out.append(Utterance(item.utt, audio=item, npy_path=f"{spk}/{item.utt}.npy" if spk else f"{item.utt}.npy"))
    return out, problems


def utterances_from_data_dir(data_dir: str, use_feats: bool = False
                             ) -> tuple[list[Utterance], list[tuple[str, str]]]:
    from spkid.kaldi.datadir import DataDir

    data = DataDir(Path(data_dir))
    utt2spk = data.table("utt2spk") if data.file("utt2spk") else {}
    if not use_feats:
        return utterances_from_scp(str(data.wav_scp_path), data.segments_path, utt2spk)
    feats = data.table("feats.scp")
    vad = data.table("vad.scp") if data.file("vad.scp") else {}
    return [Utterance(u, feats_entry=e, vad_entry=vad.get(u),
                      npy_path=f"{utt2spk[u]}/{u}.npy" if u in utt2spk else f"{u}.npy")
            for u, e in feats.items()], []


def utterances_from_folder(root: str, pattern: str) -> list[Utterance]:
    """Every file matching `pattern` below `root`; id = relative path without suffix, '/' -> '-'."""
    base = Path(root)
    if not base.is_dir():
        raise SpkidError(f"{root}: not a directory")
    files = sorted(p for p in base.rglob(pattern) if p.is_file())
    if not files:
        raise SpkidError(f"{root}: no file matches '{pattern}'")
    out = []
    for path in files:
        rel = path.relative_to(base)
        utt = str(rel.with_suffix("")).replace(os.sep, "-")
        out.append(Utterance(utt, audio=AudioItem(utt, str(path)), npy_path=str(rel.with_suffix(".npy"))))
    return sorted(out, key=lambda u: u.utt.encode())


def write_embeddings(utts: list[Utterance], embedder: Embedder, wspecifier: str | None, npy_dir: str | None,
                     failures: FailureLog, num_workers: int = 2, batch_size: int = 256) -> int:
    """Embed and write to an ark/scp wspecifier and/or a .npy tree; returns the number written."""
    from spkid.atomic import atomic_write_bytes
    from spkid.kaldi.io import TableWriter

    if wspecifier is None and npy_dir is None:
        raise SpkidError("give an output: an ark,scp: wspecifier and/or --npy-dir")
    unwritable = {u.utt: reason for u in utts
                  if (reason := unwritable_reason(u, wspecifier is not None, npy_dir)) is not None}
    for utt in (u for u in utts if u.utt in unwritable):  # reported and skipped; the others are written
        failures.fail(utt.utt, unwritable[utt.utt])
    utts = [u for u in utts if u.utt not in unwritable]
    writer = TableWriter(wspecifier) if wspecifier else None
    written = 0
    try:
        for utt, emb, err in iter_embeddings(utts, embedder, num_workers, batch_size):
            if err is not None:
                failures.fail(utt.utt, err)
                continue
            if writer is not None:
                writer.write(utt.utt, emb)
            if npy_dir is not None:
                buffer = io.BytesIO()
                np.save(buffer, emb)
                atomic_write_bytes(Path(npy_dir) / utt.npy_path, buffer.getvalue())
            failures.ok()
            written += 1
        if writer is not None:
            writer.commit()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    return written


def unwritable_reason(utt: Utterance, to_table: bool, npy_dir: str | None) -> str | None:
    """Why this utterance's embedding cannot be written to the outputs asked for (None when it can): an id
    that is no Kaldi key (a file name with a space, from --input), a .npy path outside --npy-dir or with a
    part too long for a file name."""
    from spkid.atomic import max_name_bytes

    source = f" (from {utt.audio.entry})" if utt.audio is not None else ""
    if to_table and (not utt.utt or any(c.isspace() for c in utt.utt)):
        return f"'{utt.utt}'{source} cannot be a Kaldi table key (empty or containing whitespace); rename it"
    if npy_dir is None:
        return None
    if not is_safe_relative(utt.npy_path):  # an id like ../x or /x would write outside --npy-dir
        return f"'{utt.npy_path}' is not a safe path inside --npy-dir (no '..', '.', empty or absolute parts)"
    *folders, name = utt.npy_path.replace("\\", "/").split("/")
    probe = npy_dir if os.path.isdir(npy_dir) else os.path.dirname(os.path.abspath(npy_dir))
    for part, most in [*((f, max_name_bytes(probe, temporary=False)) for f in folders), (name, max_name_bytes(probe))]:
        if len(part.encode("utf-8", "surrogateescape")) > most:
            return (f"'{part}' of its --npy-dir path is {len(part.encode('utf-8', 'surrogateescape'))} bytes, "
                    f"too long for a file name here (at most {most})")
    return None


def is_safe_relative(path: str | None) -> bool:
    """Whether a path stays inside the folder it is relative to: relative, no '..', '.' or empty part."""
    if not path or "\0" in path or os.path.isabs(path) or path.startswith(("/", "\\")):
        return False
    parts = path.replace("\\", "/").split("/")
    return all(part not in ("", ".", "..") for part in parts)


def embed_waveform(embedder: Embedder, wave: np.ndarray, rate: int) -> np.ndarray:
    """Embedding of one in-memory waveform (for verify and library use)."""
    emb = embedder.embed_features([embedder.features(wave, rate)])[0]
    if not np.isfinite(emb).all():
        raise SpkidError(NON_FINITE)
    return emb


def embed_file(embedder: Embedder, path: str, channel: int = -1) -> np.ndarray:
    try:
        wave, rate = read_audio(path, channel)
    except AudioError as err:
        raise SpkidError(f"{path}: {err}") from None
    try:
        return embed_waveform(embedder, wave, rate)
    except SpkidError as err:
        raise SpkidError(f"{path}: {err}") from None
