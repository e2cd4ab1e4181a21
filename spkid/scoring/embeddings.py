"""Embedding tables for the scoring back-end: loading with checks, speaker means, mean vectors, trials.

Embeddings are Kaldi float vectors read from any rspecifier (`scp:xvector.scp`, `ark:-`, `ark,t:x.ark`)
into one matrix. Every problem is a one-line SpkidError: vectors of different dimensions, NaN or
infinite values, duplicate keys, and trials naming embeddings that are absent (with how many, and the
first few). Speaker means reproduce Kaldi's `ivector-mean` (no length normalisation).
"""
from __future__ import annotations

import logging
import math
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from spkid.errors import SpkidError, where
from spkid.scoring.metrics import TrialList

logger = logging.getLogger("spkid.scoring")

SHOW = 5  # how many offending keys an error message lists


def first_few(items: Sequence[str], n: int = SHOW) -> str:
    """`a, b, c, ...`: the first `n` items, for error messages."""
    return ", ".join(f"'{x}'" for x in items[:n]) + (", ..." if len(items) > n else "")


@dataclass
class Embeddings:
    """Keyed embeddings: `matrix[i]` is the vector of `keys[i]` (float32, as Kaldi's BaseFloat)."""

    keys: list[str]
    matrix: np.ndarray
    source: str = "embeddings"
    index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.index = {k: i for i, k in enumerate(self.keys)}

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def __len__(self) -> int:
        return len(self.keys)

    def rows(self, keys: Iterable[str]) -> np.ndarray:
        """The row numbers of `keys` (all must be present)."""
        return np.fromiter((self.index[k] for k in keys), dtype=np.int64)

    def missing(self, keys: Iterable[str]) -> list[str]:
        """Keys (first occurrence order, unique) that have no embedding."""
        return list(dict.fromkeys(k for k in keys if k not in self.index))


def check_matrix(keys: Sequence[str], matrix: np.ndarray, source: str) -> None:
    """Error when any row has NaN or infinite values (naming how many and the first few)."""
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        names = [keys[i] for i in np.flatnonzero(bad)]
        raise SpkidError(f"{source}: {len(names)} of {len(keys)} embeddings contain NaN or infinite values: "
                         f"{first_few(names)}")


def from_arrays(items: Iterable[tuple[str, np.ndarray]], source: str) -> Embeddings:
    """Build Embeddings from (key, vector) pairs, checking shape, dimension, duplicates and values."""
    keys: list[str] = []
    vectors: list[np.ndarray] = []
    seen: set[str] = set()
    dim = None
    other_dims: list[str] = []
    for key, array in items:
        array = np.asarray(array)
        if array.ndim != 1:
            raise SpkidError(f"{source}: '{key}' is a {'x'.join(map(str, array.shape))} matrix, "
                             "expected a vector (one embedding per key)")
        if key in seen:
            raise SpkidError(f"{source}: duplicate key '{key}'")
        seen.add(key)
        if dim is None:
            dim = array.size
        elif array.size != dim:
            other_dims.append(f"{key} ({array.size})")
        keys.append(key)
        vectors.append(array)
    if not keys:
        raise SpkidError(f"{source}: no embeddings")
    if other_dims:
        raise SpkidError(f"{source}: embeddings of different dimensions: '{keys[0]}' has dimension {dim}, "
                         f"{len(other_dims)} others differ: {', '.join(other_dims[:SHOW])}"
                         + (", ..." if len(other_dims) > SHOW else ""))
    if dim == 0:
        raise SpkidError(f"{source}: embeddings are empty vectors")
    matrix = np.stack(vectors).astype(np.float32, copy=False)
    check_matrix(keys, matrix, source)
    return Embeddings(keys, matrix, source)


def load_embeddings(rspecifier: str) -> Embeddings:
    """Read a table of embedding vectors (any Kaldi rspecifier) into memory, with checks."""
    from spkid.kaldi.io import read_table

    return from_arrays(read_table(rspecifier), rspecifier)


def check_same_dim(*sets: tuple[str, int]) -> None:
    """Error unless all (name, dimension) pairs have the same dimension."""
    dims = {d for _, d in sets}
    if len(dims) > 1:
        raise SpkidError("embeddings of different dimensions: " + ", ".join(f"{n} has {d}" for n, d in sets))


# ------------------------------------------------------------------------------------------ speaker means
def speaker_means(emb: Embeddings, spk2utt: dict[str, list[str]], strict: bool = False
                  ) -> tuple[Embeddings, dict[str, int]]:
    """Per-speaker means of the utterance embeddings, as Kaldi's `ivector-mean` (no length normalisation).

    Returns (speaker means, {speaker: number of utterances averaged}). As Kaldi, an utterance without an
    embedding is skipped with a warning and a speaker with none gets no output; with `strict` any
    missing utterance is an error instead. The mean is summed and scaled in float, as Kaldi.
    """
    missing = emb.missing(u for utts in spk2utt.values() for u in utts)
    if missing and strict:
        n_utts = sum(len(u) for u in spk2utt.values())
        raise SpkidError(f"{len(missing)} of {n_utts} utterances in spk2utt have no embedding in "
                         f"{emb.source}: {first_few(missing)}")
    for utt in missing[:SHOW]:
        logger.warning("No embedding present in input for utterance %s", utt)
    keys: list[str] = []
    means: list[np.ndarray] = []
    counts: dict[str, int] = {}
    no_output = []
    for spk, utts in spk2utt.items():
        if not utts:
            raise SpkidError(f"speaker '{spk}' has no utterances in spk2utt")
        rows = [emb.index[u] for u in utts if u in emb.index]
        if not rows:
            no_output.append(spk)
            continue
        keys.append(spk)
        # as ivector-mean: Vector<BaseFloat> sum of the utterances in order, then Scale(1.0 / count), in float
        total = emb.matrix[rows].astype(np.float32).cumsum(axis=0, dtype=np.float32)[-1]
        means.append(total * np.float32(1.0 / len(rows)))
        counts[spk] = len(rows)
    if missing:
        logger.warning("%d utterances had no embedding; %d speakers (%s) got no output", len(missing),
                       len(no_output), first_few(no_output))
    if not keys:
        raise SpkidError(f"no speaker in spk2utt has an embedding in {emb.source}")
    return Embeddings(keys, np.stack(means).astype(np.float32), f"means of {emb.source}"), counts


def global_mean(emb: Embeddings) -> np.ndarray:
    """The mean of all embeddings in float64 (Kaldi's 2-argument `ivector-mean`)."""
    return emb.matrix.astype(np.float64).mean(axis=0)


# ----------------------------------------------------------------------------------- vector files (mean.vec)
def write_vector_file(path: str, vector: np.ndarray, binary: bool = False) -> None:
    """Write a Kaldi vector object (`ivector-mean`'s mean.vec): text ` [ a b ... ]` or binary `DV`."""
    from spkid.atomic import atomic_write_bytes, atomic_write_text

    vector = np.asarray(vector, dtype=np.float64).ravel()
    if not binary:
        text = " [ " + "".join(f"{x:.7g} " for x in vector) + "]\n"  # Kaldi's text precision is 7
        if path == "-":
            import sys
            sys.stdout.write(text)
        else:
            atomic_write_text(path, text)
        return
    data = b"\0BDV " + b"\x04" + struct.pack("<i", vector.size) + vector.astype("<f8").tobytes()
    atomic_write_bytes(path, data)


def read_vector_file(path: str) -> np.ndarray:
    """Read a Kaldi vector object file (text or binary, float or double) or a .npy file, as float64."""
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise SpkidError(f"{path}: cannot read ({err.strerror})") from None
    if data.startswith(b"\x93NUMPY"):
        import io
        try:
            vec = np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as err:  # also object arrays, which would need pickle: refused
            raise SpkidError(f"{path}: not a readable .npy vector ({err})") from None
    else:
        from spkid.kaldi.objects import BadObject, read_entry

        try:
            vec = read_entry(path)
        except BadObject as err:
            raise SpkidError(f"{path}: not a Kaldi vector ({err})") from None
    vec = np.asarray(vec, dtype=np.float64)
    if vec.ndim != 1 or vec.size == 0:
        raise SpkidError(f"{path}: expected a non-empty vector, got shape {vec.shape}")
    if not np.isfinite(vec).all():
        raise SpkidError(f"{path}: vector contains NaN or infinite values")
    return vec


def load_mean(spec: str) -> np.ndarray:
    """A mean vector from a file (mean.vec, text or binary, or .npy), or the mean of an rspecifier's table."""
    head = spec.split(":", 1)[0].split(",")
    if ":" in spec and ("ark" in head or "scp" in head):
        return global_mean(load_embeddings(spec))
    return read_vector_file(spec)


# -------------------------------------------------------------------------- int tables (num_utts.ark)
def write_int_table(wspecifier: str, table: dict[str, int]) -> None:
    """Write `<key> <int>` as Kaldi's Int32Writer: `ark,t:num_utts.ark` text or `ark:` binary."""
    from spkid.kaldi.io import parse_specifier, write_text_table

    spec = parse_specifier(wspecifier, write=True)
    if spec.scp is not None:
        raise SpkidError(f"'{wspecifier}': write counts to an ark (e.g. ark,t:num_utts.ark)")
    if spec.text:
        write_text_table(wspecifier, table)
        return
    from spkid.atomic import atomic_write_bytes
    data = b"".join(f"{k} ".encode() + b"\0B\x04" + struct.pack("<i", v) for k, v in table.items())
    if spec.ark == "-":
        import sys
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
        return
    atomic_write_bytes(spec.ark, data)


def read_int_table(rspecifier: str) -> dict[str, int]:
    """Read `<key> <int>` written by Int32Writer (text or binary ark), e.g. `ark:num_utts.ark`."""
    path = rspecifier.split(":", 1)[1] if ":" in rspecifier else rspecifier
    try:
        data = Path(path).read_bytes()
    except OSError as err:
        raise SpkidError(f"{path}: cannot read ({err.strerror})") from None
    out: dict[str, int] = {}
    pos, lineno = 0, 1
    while pos < len(data):
        if data[pos:pos + 1].isspace():
            lineno += data[pos:pos + 1] == b"\n"
            pos += 1
            continue
        end = data.index(b" ", pos) if b" " in data[pos:] else len(data)
        key = data[pos:end].decode("utf-8", "surrogateescape")
        pos = end + 1
        if data[pos:pos + 3] == b"\0B\x04":
            if pos + 7 > len(data):
                raise SpkidError(f"{path}: entry '{key}' is truncated (the file ends inside its integer)")
            out[key] = struct.unpack("<i", data[pos + 3:pos + 7])[0]
            pos += 7
            continue
        nl = data.find(b"\n", pos)
        nl = len(data) if nl < 0 else nl
        value = data[pos:nl].decode().strip()
        try:
            out[key] = int(value)
        except ValueError:
            raise SpkidError(f"{where(path, lineno)}: expected '<key> <integer>', got '{key} {value}'") from None
        pos = nl
    return out


def read_spk2utt(spec: str) -> dict[str, list[str]]:
    """A spk2utt table from a file or a text rspecifier (`ark:spk2utt`, `ark,t:spk2utt`)."""
    from spkid.kaldi.tables import read_list_table

    path = spec
    if ":" in spec and spec.split(":", 1)[0].split(",")[0] in ("ark", "scp"):
        if spec.startswith("scp"):
            raise SpkidError(f"'{spec}': spk2utt must be a text file or ark:FILE")
        path = spec.split(":", 1)[1]
    return read_list_table(path)


# ------------------------------------------------------------------------------------------------ trials
def check_trial_keys(trials: TrialList, enroll: Embeddings, test: Embeddings, trials_name: str) -> None:
    """Error when trials name enroll or test embeddings that are absent (how many, and the first few)."""
    missing_e = enroll.missing(trials.enroll)
    missing_t = test.missing(trials.test)
    if not missing_e and not missing_t:
        return
    bad = sum(1 for e, t in zip(trials.enroll, trials.test) if e not in enroll.index or t not in test.index)
    parts = []
    if missing_e:
        parts.append(f"{len(missing_e)} enroll ids missing from {enroll.source} ({first_few(missing_e)})")
    if missing_t:
        parts.append(f"{len(missing_t)} test ids missing from {test.source} ({first_few(missing_t)})")
    raise SpkidError(f"{trials_name}: {bad} of {len(trials)} trials name embeddings that are absent: "
                     + "; ".join(parts))


def format_score(score: float) -> str:
    """A score as Kaldi's scoring programs print it (text streams get precision 7)."""
    return f"{score:.7g}" if math.isfinite(score) else str(score)
