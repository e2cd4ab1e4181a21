"""The Python API: `spkid.load_model(...)` -> Model (embed, embed_batch, similarity, verify).

A Model holds no global state and only reads its network, so one Model may serve several threads.
Errors a caller can cause (a missing file, audio without a rate, a model without threshold) raise
spkid.errors.SpkidError with a one-line message naming the input.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np

from spkid.errors import NON_FINITE, SpkidError

Audio = Union[str, os.PathLike, np.ndarray, "torch.Tensor"]  # noqa: F821 (torch is imported lazily)
# where a model's calibration (from `spkid calibrate`) is looked for, relative to its exp dir
CALIBRATION_FILES = ("calibration.json", "scores/calibration.json")


@dataclass(frozen=True)
class Verification:
    """A same/different decision: `same` is `score >= threshold`; `llr` when the threshold is calibrated."""

    same: bool
    score: float
    threshold: float
    llr: float | None = None


def check_embedding(emb: np.ndarray, what: str = "an embedding") -> None:
    """SpkidError naming `what` when the vector has NaN/inf values or is zero (it cannot be scored)."""
    if not np.isfinite(emb).all():
        raise SpkidError(f"{what} has NaN or infinite values; cannot score")
    if not np.linalg.norm(emb) > 0:
        raise SpkidError(f"{what} is zero; cannot score")


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    norms = float(np.linalg.norm(a) * np.linalg.norm(b))
    if not norms > 0:
        for emb in (a, b):
            check_embedding(emb)
    return float(np.dot(a, b) / norms)


def check_threshold(threshold) -> float:
    """A decision threshold given by a caller: a finite real number (not a string, bool or NaN)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.integer, np.floating)) \
            or not np.isfinite(threshold):
        raise SpkidError(f"threshold {threshold!r}: give a finite number (a cosine score, e.g. 0.5)")
    return float(threshold)


def _label(item) -> str:
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    shape = getattr(item, "shape", None)
    return f"<{type(item).__name__} audio{' of shape ' + str(tuple(shape)) if shape is not None else ''}>"


def _sample_rate(rate, audio) -> int:
    from spkid.kaldi.audio import SampleRateError, check_sample_rate

    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise SpkidError(f"{_label(audio)}: sample_rate {rate!r} is not a number (samples per second, e.g. 16000)")
    try:
        return check_sample_rate(rate, f"{_label(audio)}")
    except SampleRateError as err:
        raise SpkidError(str(err)) from None


def _item_list(items, what: str) -> list:
    """A list of audio items; one path or string is refused (it is not a list of them)."""
    if isinstance(items, (str, bytes, os.PathLike)):
        raise SpkidError(f"{what} takes a list of paths or sample arrays, not one {type(items).__name__} "
                         f"({str(items)[:60]!r}): use embed() for one, or {what}([...])")
    return list(items)


def _is_array(item) -> bool:
    return isinstance(item, np.ndarray) or type(item).__module__.startswith("torch")


class Model:
    """A loaded speaker-embedding model (checkpoint, exp dir, exported file or pretrained name)."""

    def __init__(self, embedder, source: str, fingerprint: str, calibration=None, calibration_file: str | None = None):
        self.embedder, self.source, self.fingerprint = embedder, source, fingerprint
        self.calibration = calibration  # spkid.scoring.calibration.Calibration or None
        self.calibration_file = calibration_file  # where it was read from

    def __repr__(self) -> str:
        return f"spkid.Model({self.source!r}, device={self.device!r})"

    @property
    def device(self) -> str:
        return str(self.embedder.device)

    @property
    def sample_rate(self) -> int:
        """The rate the front-end works at (other rates are resampled)."""
        return int(self.embedder.frontend.sample_rate)

    @property
    def threshold(self) -> float | None:
        """The calibrated decision threshold (cosine score), or None without a calibration."""
        return None if self.calibration is None else float(self.calibration.threshold)

    def features(self, audio: Audio, sample_rate: int | None = None) -> np.ndarray:
        """(frames, dim) front-end features of a file or of 1-D float samples at `sample_rate`."""
        from spkid.kaldi.audio import AudioError, _pick_channel, read_audio_channels

        if isinstance(audio, (str, os.PathLike)):
            try:
                data, rate = read_audio_channels(str(audio))
                if data.shape[1] != 1:  # the command line's --channel has no counterpart here
                    raise SpkidError(f"{audio}: {data.shape[1]} channels, the Python API takes mono audio: give one "
                                     "channel's samples, e.g. soundfile.read(path, dtype='float32')[0][:, 0], with "
                                     "sample_rate=")
                wave = _pick_channel(data, 0, f"'{audio}'")
            except AudioError as err:
                raise SpkidError(f"{audio}: {err}") from None
        elif _is_array(audio):
            if sample_rate is None:
                raise SpkidError("in-memory audio needs its sample_rate (e.g. model.embed(samples, sample_rate=16000))")
            wave = audio.detach().cpu().numpy() if hasattr(audio, "detach") else np.asarray(audio)
            if wave.ndim != 1 or not np.issubdtype(wave.dtype, np.floating):
                raise SpkidError(f"in-memory audio must be 1-D float samples in [-1, 1], got {wave.dtype} "
                                 f"of shape {wave.shape}")
            wave = wave.astype(np.float32, copy=False)
            finite = np.isfinite(wave)
            if not finite.all():
                raise SpkidError(f"{_label(audio)}: {int((~finite).sum())} non-finite samples (NaN or inf), the "
                                 f"first at sample {int(np.argmin(finite))}")
            rate = _sample_rate(sample_rate, audio)
        else:
            raise SpkidError(f"cannot embed a {type(audio).__name__}: give a path or 1-D float samples")
        try:
            feats = self.embedder.features(wave, rate)
        except (SpkidError, ValueError) as err:
            raise SpkidError(f"{_label(audio)}: {err}") from None
        if len(feats) == 0:
            raise SpkidError(f"{_label(audio)}: no feature frames (audio too short or silent)")
        return feats

    def embed(self, audio: Audio, sample_rate: int | None = None) -> np.ndarray:
        """(D,) float32 unit-length embedding of a file, or of in-memory samples at `sample_rate`."""
        emb = self.embedder.embed_features([self.features(audio, sample_rate)])[0]
        if not np.isfinite(emb).all():
            raise SpkidError(f"{_label(audio)}: {NON_FINITE}")
        return emb

    def embed_batch(self, items: list[Audio], sample_rate: int | None = None, batch_size: int = 256) -> np.ndarray:
        """(N, D) embeddings; the windows of all items go through the network together."""
        items = _item_list(items, "embed_batch")
        if not len(items):
            raise SpkidError("embed_batch: no audio given")
        feats = []
        for i, item in enumerate(items):
            try:
                feats.append(self.features(item, sample_rate))
            except SpkidError as err:
                raise SpkidError(f"embed_batch item {i}: {err}" if _is_array(item) else str(err)) from None
        embs = self.embedder.embed_features(feats, batch_size)
        bad = np.flatnonzero(~np.isfinite(embs).all(axis=1))
        if len(bad):
            raise SpkidError(f"{_label(items[bad[0]])}: {NON_FINITE}")
        return embs

    def embed_each(self, items: list[Audio], sample_rate: int | None = None, batch_size: int = 256
                   ) -> list[tuple[np.ndarray | None, str | None]]:
        """(embedding, None) or (None, error message) for each item: failures do not stop the others."""
        feats: list[np.ndarray | None] = []
        errors: list[str | None] = []
        for item in _item_list(items, "embed_each"):
            try:
                feats.append(self.features(item, sample_rate))
                errors.append(None)
            except SpkidError as err:
                feats.append(None)
                errors.append(str(err))
        good = [f for f in feats if f is not None]
        embs = iter(self.embedder.embed_features(good, batch_size) if good else [])
        out = [(next(embs), None) if f is not None else (None, e) for f, e in zip(feats, errors)]
        return [(None, f"{_label(item)}: {NON_FINITE}") if emb is not None and not np.isfinite(emb).all()
                else (emb, err) for item, (emb, err) in zip(items, out)]

    def as_embedding(self, item, sample_rate: int | None = None) -> np.ndarray:
        """Paths and samples (with sample_rate) are embedded; an array without sample_rate is an embedding."""
        if _is_array(item) and sample_rate is None:
            emb = item.detach().cpu().numpy() if hasattr(item, "detach") else np.asarray(item)
            if emb.ndim != 1:
                raise SpkidError(f"an embedding must be 1-D, got shape {emb.shape} (audio needs sample_rate=)")
            return emb.astype(np.float32, copy=False)
        return self.embed(item, sample_rate)

    def similarity(self, a, b, sample_rate: int | None = None) -> float:
        """Cosine score of two paths, sample arrays (with sample_rate) or embeddings."""
        ea, eb = self.as_embedding(a, sample_rate), self.as_embedding(b, sample_rate)
        if ea.shape != eb.shape:
            raise SpkidError(f"embeddings of different dims ({ea.shape[0]} and {eb.shape[0]})")
        for item, emb in ((a, ea), (b, eb)):
            check_embedding(emb, f"the embedding of {_label(item)}")
        return cosine(ea, eb)

    def verify(self, a, b, threshold: float | None = None, sample_rate: int | None = None) -> Verification:
        """Same speaker? Against `threshold`, else the model's calibrated threshold."""
        if threshold is None:
            if self.calibration is None:
                raise SpkidError(f"{self.source}: no calibrated threshold (no {' or '.join(CALIBRATION_FILES)} "
                                 "from `spkid calibrate` beside the model); give threshold= or calibration=")
            threshold = self.calibration.threshold
        threshold = check_threshold(threshold)
        score = self.similarity(a, b, sample_rate)
        llr = None if self.calibration is None else float(self.calibration.apply(score))
        return Verification(score >= threshold, score, float(threshold), llr)


def find_calibration(path: str) -> Path | None:
    """The calibration file of a model: in its exp dir (the folder above checkpoints/) or beside the file."""
    path = Path(path)
    roots = [path] if path.is_dir() else [path.parent] + ([path.parent.parent]
                                                          if path.parent.name == "checkpoints" else [])
    for root in roots:
        for name in CALIBRATION_FILES:
            if (root / name).is_file():
                return root / name
    return None


def load_model(source: str | os.PathLike, device: str = "auto", calibration: str | os.PathLike | None = None, *,
               trust_torchscript: bool = False) -> Model:
    """A pretrained name, exp dir, checkpoint file, .onnx export or (with `trust_torchscript`) .ts export
    -> Model; spkid.inference.load_embedder opens it, as every command does.

    `device`: "auto" (a GPU when there is one), "cpu", "cuda:1" ... `calibration`: a file from
    `spkid calibrate` (default: calibration.json or scores/calibration.json in the model's exp dir).
    A TorchScript file runs its own code when loaded: pass `trust_torchscript=True` only for files you trust.
    """
    from spkid.augment.inline import register
    from spkid.inference import load_embedder, resolve_model
    from spkid.scoring.calibration import Calibration

    register()  # wav.scp-style `... | wav-reverberate ... |` inputs run in-process, as on the command line
    resolved = resolve_model(source)
    embedder = load_embedder(resolved, device, trust_torchscript=trust_torchscript)
    calibration = calibration if calibration is not None else find_calibration(resolved.root)
    calib = Calibration.load(str(calibration)) if calibration is not None else None
    if calib is not None:
        calib.check_model(embedder.fingerprint, resolved.given, str(calibration))
    return Model(embedder, resolved.given, embedder.fingerprint, calib, None if calib is None else str(calibration))
