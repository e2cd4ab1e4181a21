"""16-bit PCM wav output as Kaldi's WaveData::Write (float samples times 2^15, truncated toward zero, clipped),
whole (bytes) or streamed as a repetition of a shorter wave (wav-reverberate --duration), block by block."""
from __future__ import annotations

import struct

import numpy as np

from spkid.errors import SpkidError

KALDI_SCALE = 32768.0  # Kaldi reads 16-bit PCM as integers: float samples times 2^15
MAX_WAV_DATA_BYTES = 0xFFFFFFFF - 36  # RIFF sizes are 32-bit


def kaldi_wav_bytes(data: np.ndarray, rate: int) -> tuple[bytes, int]:
    """A 16-bit PCM RIFF wav of float samples (samples[, channels]) in [-1, 1). Returns (bytes, number clipped)."""
    pcm, clipped = kaldi_pcm(data)
    return wav_header(len(pcm), pcm.shape[1], rate) + pcm.tobytes(), int(clipped.sum())


def write_kaldi_wav(handle, base: np.ndarray, num_samples: int, rate: int, block_samples: int = 1 << 20) -> int:
    """Write to `handle` the wav (as kaldi_wav_bytes) of `base` (samples[, channels]) repeated cyclically to
    `num_samples`, a block at a time: memory stays that of `base` whatever the length. Returns the number of
    samples clipped."""
    pcm, clipped = kaldi_pcm(base)
    if len(pcm) == 0:
        raise ValueError("cannot repeat an empty wave")
    pcm, clipped = pcm[:num_samples], clipped[:num_samples]
    handle.write(wav_header(num_samples, pcm.shape[1], rate))
    block = np.resize(pcm, (min(num_samples, len(pcm) * max(1, block_samples // len(pcm))), pcm.shape[1]))
    written = 0
    while written < num_samples:  # every block starts at sample 0 of `base` (its length is a multiple of it)
        n = min(len(block), num_samples - written)
        handle.write(block[:n].tobytes())
        written += n
    full, rest = divmod(num_samples, len(pcm))
    return int(clipped.sum()) * full + int(clipped[:rest].sum())


def kaldi_pcm(data: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int16 (samples, channels), number of samples clipped in each row) of float samples."""
    data = np.asarray(data, np.float64).reshape(len(data), -1)
    ints = np.trunc(data * KALDI_SCALE)
    clipped = np.count_nonzero((ints < -32768) | (ints > 32767), axis=1)
    return np.clip(ints, -32768, 32767).astype("<i2"), clipped


def wav_header(num_samples: int, num_chan: int, rate: int) -> bytes:
    """The 44-byte RIFF header; SpkidError when the data would not fit a wav file (4 GiB)."""
    data_bytes = num_samples * num_chan * 2
    if data_bytes > MAX_WAV_DATA_BYTES:
        raise SpkidError(f"{num_samples} samples x {num_chan} channel(s) at {rate} Hz "
                         f"({num_samples / rate / 3600:.1f} hours) are more than a 16-bit wav file holds "
                         f"({MAX_WAV_DATA_BYTES // (2 * num_chan)} samples, 4 GiB)")
    return b"".join([b"RIFF", struct.pack("<I", 36 + data_bytes), b"WAVEfmt ",
                     struct.pack("<IHHIIHH", 16, 1, num_chan, int(rate), int(rate) * num_chan * 2, num_chan * 2, 16),
                     b"data", struct.pack("<I", data_bytes)])
