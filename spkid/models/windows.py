"""Utterance-level embeddings from fixed-size partial windows (GE2E d-vector extraction).

A GE2E encoder is trained on partial utterances of 160 frames; an utterance's embedding is the
average of the L2-normalised embeddings of its partial windows, renormalised. How windows are laid
out is a JSON-able dict stored in checkpoints under "extraction":

- `{"scheme": "overlap", "window_frames": 160, "overlap": 0.5, "min_coverage": 0.75}` -- windows of
  160 frames with 50% overlap (step round(160 * (1 - overlap)) = 80 frames), PaddleSpeech
  examples/ge2e's and Real-Time-Voice-Cloning's `compute_partial_slices` (whose defaults these are).
- `{"scheme": "resemblyzer", "window_frames": 160, "rate": 1.3, "min_coverage": 0.75,
  "frame_rate": 100}` -- Resemblyzer's `VoiceEncoder.compute_partial_slices`: `rate` windows per
  second, i.e. a step of round(frame_rate / rate) = 77 frames.

Both schemes share one algorithm (the same function in Resemblyzer, PaddleSpeech and RTVC): windows
start every `step` frames, the last one may run past the end of the utterance and is kept only when
the utterance covers at least `min_coverage` of it; whatever the windows reach past the end is zero
frames (those implementations zero-pad the waveform). An utterance shorter than one window is
therefore zero-padded to a full window, as PaddleSpeech and Resemblyzer users get: never dropped,
never run at its own length. With `"pad": "repeat"` the frames past the end repeat the utterance from
its start instead (WeSpeaker's repeat padding): what a model trained on tiled crops of short utterances
expects (Deep Speaker recipes on short clips).

- `{"scheme": "full", "max_frames": 30000}` -- no windows: the whole utterance goes through the network at
  once (WeSpeaker's and 3D-Speaker's extraction, for encoders with statistics pooling such as CAM++,
  ECAPA-TDNN and ResNet); the embedding is the network's output, L2-normalised. The network's memory grows
  with the length (CAM++: ~250 MB a minute), so an utterance longer than `max_frames` (default 30000, 5 min
  at 100 frames/s) is cut into the fewest equal pieces of at most `max_frames` frames, and its embedding is
  the renormalised mean of theirs (as windows are averaged); 0 or null: never cut. Utterances of similar
  length share a zero-padded batch when the encoder takes `forward(feats, lengths)` and then gives each
  utterance exactly the embedding it gets alone (CAM++, ECAPA-TDNN and the ResNets do: masked
  convolutions and poolings, spkid.models.masking); otherwise only utterances of equal length do.

These implementations work in samples; here the count of samples is (num_frames - 1) * hop, which
gives the same windows whenever min_coverage * window_frames is a whole number (0.75 * 160 = 120).
Resemblyzer computes the mel of the zero-padded waveform, so in a window reaching past the end the
one or two frames just past it hold the tail of the last analysis window, where here they are zero;
the embeddings still agree with Resemblyzer's to cosine > 0.9999999 on LibriSpeech
(tests/test_bin_import_resemblyzer.py).
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from spkid.errors import SpkidError
from spkid.models import device_and_dtype

DEFAULTS: dict[str, dict] = {
    "overlap": {"window_frames": 160, "overlap": 0.5, "min_coverage": 0.75, "pad": "zero"},
    "resemblyzer": {"window_frames": 160, "rate": 1.3, "min_coverage": 0.75, "frame_rate": 100.0, "pad": "zero"},
    "full": {"max_frames": 30000},
}
PADS = ("zero", "repeat")


def extraction_config(config: dict | None = None) -> dict:
    """A validated extraction config with defaults filled in (default scheme: "overlap")."""
    config = dict(config or {})
    scheme = config.pop("scheme", "overlap")
    if scheme not in DEFAULTS:
        raise SpkidError(f"unknown extraction scheme '{scheme}' (known: {', '.join(DEFAULTS)})")
    unknown = sorted(set(config) - set(DEFAULTS[scheme]))
    if unknown:
        raise SpkidError(f"unknown option(s) for extraction scheme '{scheme}': {', '.join(unknown)}")
    out = {"scheme": scheme, **DEFAULTS[scheme], **config}
    if scheme == "full":
        limit = out["max_frames"]
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise SpkidError(f"extraction: max_frames must be a whole number >= 0 (0 or null: no limit), got {limit}")
        return out
    if int(out["window_frames"]) < 1:
        raise SpkidError(f"extraction: window_frames must be >= 1, got {out['window_frames']}")
    if not 0 < float(out["min_coverage"]) <= 1:
        raise SpkidError(f"extraction: min_coverage must be in (0, 1], got {out['min_coverage']}")
    if scheme == "overlap" and not 0 <= float(out["overlap"]) < 1:
        raise SpkidError(f"extraction: overlap must be in [0, 1), got {out['overlap']}")
    if out["pad"] not in PADS:
        raise SpkidError(f"extraction: pad must be one of {', '.join(PADS)}, not '{out['pad']}'")
    if scheme == "resemblyzer" and not (float(out["rate"]) > 0 and float(out["frame_rate"]) > 0):
        raise SpkidError("extraction: rate and frame_rate must be positive")
    frame_step(out)  # checks the step against the window
    return out


def frame_step(config: dict) -> int:
    """Frames between the starts of two consecutive windows."""
    window = int(config["window_frames"])
    if config["scheme"] == "overlap":
        return max(1, int(np.round(window * (1 - float(config["overlap"])))))
    step = int(np.round(float(config["frame_rate"]) / float(config["rate"])))
    if not 0 < step <= window:
        raise SpkidError(f"extraction: rate {config['rate']} gives a step of {step} frames; it must be "
                         f"in [1, window_frames={window}] (rate at least {config['frame_rate'] / window:g})")
    return step


def partial_slices(num_frames: int, config: dict) -> list[slice]:
    """The frame ranges of an utterance's windows; the last may end past `num_frames` (zero frames)."""
    config = extraction_config(config)
    return _slices(num_frames, *_layout(config))


def _layout(config: dict) -> tuple[int, int, float]:
    return int(config["window_frames"]), frame_step(config), float(config["min_coverage"])


def _slices(num_frames: int, window: int, step: int, min_coverage: float) -> list[slice]:
    steps = max(1, num_frames - window + step + 1)
    slices = [slice(start, start + window) for start in range(0, steps, step)]
    coverage = (num_frames - 1 - slices[-1].start) / window
    if coverage < min_coverage and len(slices) > 1:
        slices.pop()
    return slices


def iter_windows(frames_list: Sequence[np.ndarray], config: dict) -> Iterator[tuple[int, np.ndarray]]:
    """(utterance index, (window_frames, dim) window) for every window of every utterance, in order (scheme
    "full": each utterance whole, or its pieces past max_frames)."""
    config = extraction_config(config)
    full = config["scheme"] == "full"
    window, step, min_coverage = (0, 0, 0.0) if full else _layout(config)
    for index, frames in enumerate(frames_list):
        frames = np.asarray(frames)
        if frames.ndim != 2 or len(frames) == 0:
            raise SpkidError(f"utterance {index}: expected (frames, dim) features with at least one frame, "
                             f"got shape {frames.shape}")
        if full:  # the whole utterance, or its pieces past max_frames
            for piece in full_pieces(len(frames), config.get("max_frames")):
                yield index, frames[piece]
            continue
        slices = _slices(len(frames), window, step, min_coverage)
        total = max(len(frames), slices[-1].stop)
        if total > len(frames) and config["pad"] == "repeat":
            frames = frames[np.arange(total) % len(frames)]
        elif total > len(frames):
            frames = np.concatenate([frames, np.zeros((total - len(frames), frames.shape[1]), frames.dtype)])
        for piece in slices:
            yield index, frames[piece]


def embed_frames(model: torch.nn.Module, frames_list: Sequence[np.ndarray], config: dict,
                 batch_size: int = 256, autocast: torch.dtype | None = None,
                 device: torch.device | None = None) -> np.ndarray:
    """(N, D) float32 utterance embeddings of N (frames, dim) feature arrays.

    The windows of all utterances go through `model` (on its device) together, `batch_size` at a time;
    each utterance's L2-normalised window embeddings are averaged and the mean renormalised.
    `autocast` (e.g. torch.bfloat16) runs the network under torch.autocast with that dtype. Inputs go to
    `device` (default: where the model's weights are; spkid.models.device_and_dtype).
    """
    config = extraction_config(config)
    if batch_size < 1:
        raise SpkidError(f"batch_size must be >= 1, got {batch_size}")
    if len(frames_list) == 0:
        return np.zeros((0, int(getattr(model, "embed_dim", 0))), dtype=np.float32)
    for index, frames in enumerate(frames_list):  # fail before any work is done
        if np.ndim(frames) != 2 or len(frames) == 0:
            raise SpkidError(f"utterance {index}: expected (frames, dim) features with at least one frame, "
                             f"got shape {np.shape(frames)}")
    dims = {np.shape(frames)[1] for frames in frames_list}
    if len(dims) > 1:
        raise SpkidError(f"utterances have features of different dims ({', '.join(map(str, sorted(dims)))})")
    device, dtype = device_and_dtype(model, device)
    if config["scheme"] == "full":
        return _embed_whole(model, frames_list, config, batch_size, autocast, device, dtype)
    window, dim = int(config["window_frames"]), dims.pop()
    batch = np.zeros((batch_size, window, dim), dtype=np.float32)
    owners = np.zeros(batch_size, dtype=np.int64)
    sums: np.ndarray | None = None
    was_training = model.training
    model.eval()

    def flush(count: int) -> None:
        nonlocal sums
        with torch.inference_mode(), torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            out = model(torch.from_numpy(batch[:count]).to(device=device, dtype=dtype))
        out = out.float().cpu().numpy()
        if sums is None:
            sums = np.zeros((len(frames_list), out.shape[1]), dtype=np.float64)
        np.add.at(sums, owners[:count], out)

    try:
        filled = 0
        for index, piece in iter_windows(frames_list, config):
            batch[filled] = piece
            owners[filled] = index
            filled += 1
            if filled == batch_size:
                flush(filled)
                filled = 0
        if filled:
            flush(filled)
    finally:
        model.train(was_training)
    assert sums is not None
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


FULL_BATCH_FRAMES = 2000  # scheme "full": frames (padding included) in one batch of different lengths
FULL_MAX_PADDING = 0.25  # ... and at most this share of them padding


def takes_lengths(model: torch.nn.Module) -> bool:
    """Whether `model(feats, lengths)` runs a zero-padded batch exactly (CAM++, ECAPA-TDNN, ResNet do)."""
    import inspect

    try:
        return "lengths" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def length_groups(lengths: Sequence[int], batch_size: int, padded: bool) -> list[list[int]]:
    """Indices in batches of similar length: sorted by length; with `padded`, a batch grows while it stays
    within FULL_BATCH_FRAMES frames and FULL_MAX_PADDING padding (a long utterance goes alone), else
    only equal lengths share a batch."""
    groups: list[list[int]] = []
    total = 0
    for i in sorted(range(len(lengths)), key=lambda k: lengths[k]):
        if groups and len(groups[-1]) < batch_size:
            size = (len(groups[-1]) + 1) * lengths[i]  # sorted: this one is the longest
            fits = (size <= FULL_BATCH_FRAMES and total + lengths[i] >= (1 - FULL_MAX_PADDING) * size) if padded \
                else lengths[groups[-1][0]] == lengths[i]
            if fits:
                groups[-1].append(i)
                total += lengths[i]
                continue
        groups.append([i])
        total = lengths[i]
    return groups


def full_pieces(num_frames: int, max_frames: int | None) -> list[slice]:
    """Scheme "full": the utterance whole, or, past `max_frames`, the fewest equal pieces of at most that."""
    if not max_frames or num_frames <= max_frames:
        return [slice(0, num_frames)]
    count = -(-num_frames // max_frames)
    size = -(-num_frames // count)
    return [slice(start, min(start + size, num_frames)) for start in range(0, num_frames, size)]


def _embed_whole(model: torch.nn.Module, frames_list: Sequence[np.ndarray], config: dict, batch_size: int,
                 autocast: torch.dtype | None, device: torch.device, dtype: torch.dtype) -> np.ndarray:
    """Scheme "full": each utterance (or each piece of one longer than max_frames) through the network whole;
    pieces of similar length are batched (zero-padded, with their lengths, when the model takes them; else
    only equal lengths). An utterance's embedding: its piece's, or the renormalised mean of its pieces'."""
    padded = takes_lengths(model)
    pieces = [(i, piece) for i, frames in enumerate(frames_list)
              for piece in full_pieces(len(frames), config.get("max_frames"))]
    lengths = [piece.stop - piece.start for _, piece in pieces]
    out: np.ndarray | None = None
    was_training = model.training
    model.eval()
    try:
        for group in length_groups(lengths, batch_size, padded):
            longest = max(lengths[k] for k in group)
            owner, _ = pieces[group[0]]
            batch = np.zeros((len(group), longest, np.shape(frames_list[owner])[1]), dtype=np.float32)
            for row, k in enumerate(group):
                i, piece = pieces[k]
                batch[row, :lengths[k]] = frames_list[i][piece]
            x = torch.from_numpy(batch).to(device=device, dtype=dtype)
            args = (torch.tensor([lengths[k] for k in group], device=device),) if padded else ()
            with torch.inference_mode(), torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
                emb = model(x, *args).float().cpu().numpy()
            if out is None:
                out = np.zeros((len(pieces), emb.shape[1]), dtype=np.float64)
            out[group] = emb
    finally:
        model.train(was_training)
    assert out is not None
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    if len(pieces) > len(frames_list):  # some utterances were cut: the mean of their pieces
        sums = np.zeros((len(frames_list), out.shape[1]), dtype=np.float64)
        np.add.at(sums, [i for i, _ in pieces], out)
        out = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)
