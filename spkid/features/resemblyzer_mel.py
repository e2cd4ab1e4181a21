"""Resemblyzer's front-end (front-end type "resemblyzer-mel"), without resemblyzer or librosa.

Reproduces `resemblyzer.preprocess_wav` on a 16 kHz waveform followed by
`resemblyzer.wav_to_mel_spectrogram`, i.e. the features its pretrained GE2E encoder was trained on:

1. `normalize_volume(wav, -30 dBFS, increase_only=True)`, in float32 as numpy computes it there;
2. `trim_long_silences`: webrtcvad (mode 3) on 30 ms windows of the int16-rounded waveform, a moving
   average of width 8 rounded to a mask, binary dilation by 6 + 1 windows, unvoiced windows dropped;
3. a 40-band mel *power* spectrogram as `librosa.feature.melspectrogram` computes it with librosa's
   defaults: n_fft 400 (25 ms), hop 160 (10 ms), periodic Hann window, `center=True`, power 2,
   Slaney-scale mel filters with Slaney (area) normalisation, fmin 0, fmax sr/2. librosa >= 0.10
   pads the centred edges with zeros (`pad_mode="constant"`, used by Resemblyzer with today's
   librosa); librosa 0.9 padded with "reflect" -- set `pad_mode` to match an older setup.

The output is (frames, n_mels) float32 with frames = 1 + len(trimmed wave) // hop, and NOT log-compressed
(the network was trained on linear mel power). The spectrogram is computed in float64 and rounded to
float32, so it differs from librosa's float32 arithmetic only by float32 rounding.
webrtcvad is needed only when `trim_silence` is on; it is imported when first used.
"""
from __future__ import annotations

import warnings

import numpy as np

from spkid.errors import SpkidError

INT16_MAX = (2 ** 15) - 1
# Resemblyzer's VAD hyper-parameters (resemblyzer/hparams.py); not options, the encoder expects them.
VAD_WINDOW_MS = 30
VAD_MOVING_AVERAGE_WIDTH = 8
VAD_MAX_SILENCE_LENGTH = 6
VAD_MODE = 3
VAD_SAMPLE_RATES = (8000, 16000, 32000, 48000)


def hz_to_mel(freqs: np.ndarray) -> np.ndarray:
    """Slaney mel scale (librosa.hz_to_mel with htk=False): linear below 1 kHz, logarithmic above."""
    freqs = np.asarray(freqs, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    mels = freqs / f_sp
    log_region = freqs >= min_log_hz
    mels[log_region] = min_log_mel + np.log(freqs[log_region] / min_log_hz) / logstep
    return mels


def mel_to_hz(mels: np.ndarray) -> np.ndarray:
    """Inverse of `hz_to_mel` (librosa.mel_to_hz with htk=False)."""
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    freqs = f_sp * mels
    log_region = mels >= min_log_mel
    freqs[log_region] = min_log_hz * np.exp(logstep * (mels[log_region] - min_log_mel))
    return freqs


def mel_filters(sample_rate: int, n_fft: int, n_mels: int, fmin: float = 0.0,
                fmax: float | None = None) -> np.ndarray:
    """(n_mels, 1 + n_fft // 2) float64 filters, as librosa.filters.mel(htk=False, norm='slaney')."""
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.fft.rfftfreq(n_fft, d=1.0 / sample_rate)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(np.array([fmin]))[0], hz_to_mel(np.array([fmax]))[0], n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:n_mels] / fdiff[:n_mels, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]  # Slaney area normalisation
    return weights


def normalize_volume(wav: np.ndarray, target_dbfs: float, increase_only: bool = True) -> np.ndarray:
    """Scale to `target_dbfs` RMS level (Resemblyzer's normalize_volume; float32 in, float32 out).

    A silent (all-zero) waveform is returned unchanged, where Resemblyzer would produce NaNs.
    """
    rms = np.sqrt(np.mean((wav * INT16_MAX) ** 2))
    if not rms > 0:
        return wav
    wave_dbfs = 20 * np.log10(rms / INT16_MAX)
    change = target_dbfs - wave_dbfs
    if change < 0 and increase_only:
        return wav
    return wav * (10 ** (change / 20))


def _webrtcvad():
    try:
        with warnings.catch_warnings():  # webrtcvad imports the deprecated pkg_resources
            warnings.simplefilter("ignore")
            import webrtcvad
    except ImportError as err:
        raise SpkidError(f"the resemblyzer-mel front-end needs webrtcvad to trim silences ({err}): "
                         "pip install 'spkid[resemblyzer]' (or set trim_silence to false)") from None
    return webrtcvad


def trim_long_silences(wav: np.ndarray, sample_rate: int = 16000) -> np.ndarray:
    """Drop long unvoiced stretches, exactly as Resemblyzer's trim_long_silences (webrtcvad)."""
    window = VAD_WINDOW_MS * sample_rate // 1000
    wav = wav[:len(wav) - len(wav) % window]
    if len(wav) == 0:
        return wav
    with np.errstate(invalid="ignore", over="ignore"):  # same int16 cast (and overflow) as Resemblyzer
        pcm = np.round(wav * INT16_MAX).astype(np.int16).tobytes()
    vad = _webrtcvad().Vad(VAD_MODE)
    step = window * 2  # bytes per window
    flags = np.array([vad.is_speech(pcm[i:i + step], sample_rate) for i in range(0, len(pcm), step)])

    width = VAD_MOVING_AVERAGE_WIDTH
    padded = np.concatenate((np.zeros((width - 1) // 2), flags, np.zeros(width // 2)))
    smoothed = np.cumsum(padded, dtype=float)
    smoothed[width:] = smoothed[width:] - smoothed[:-width]
    mask = np.round(smoothed[width - 1:] / width).astype(bool)

    from scipy.ndimage import binary_dilation
    mask = binary_dilation(mask, np.ones(VAD_MAX_SILENCE_LENGTH + 1))
    return wav[np.repeat(mask, window)]


def mel_power_spectrogram(wav: np.ndarray, sample_rate: int, n_fft: int, hop: int, n_mels: int,
                          pad_mode: str = "constant", filters: np.ndarray | None = None) -> np.ndarray:
    """(1 + len(wav) // hop, n_mels) float32 mel power spectrogram, as librosa's melspectrogram.

    `filters`: `mel_filters(...)`, dense or as a scipy.sparse matrix (faster, and never multi-threaded).
    """
    if filters is None:
        filters = mel_filters(sample_rate, n_fft, n_mels)
    half = n_fft // 2
    signal = np.asarray(wav, dtype=np.float64)
    if pad_mode == "reflect" and len(signal) <= half:
        raise SpkidError(f"waveform of {len(signal)} samples is too short for reflect padding")
    signal = np.pad(signal, half, mode=pad_mode)
    frames = np.lib.stride_tricks.sliding_window_view(signal, n_fft)[::hop]
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    spectrum = np.fft.rfft(frames * window, axis=-1)
    power = spectrum.real ** 2 + spectrum.imag ** 2
    if not isinstance(filters, np.ndarray):  # sparse
        return (filters @ power.T).T.astype(np.float32, order="C")
    return (power @ filters.T).astype(np.float32)


class ResemblyzerFrontend:
    """Front-end type "resemblyzer-mel": Resemblyzer's volume normalisation, VAD trim and mel power."""

    def __init__(self, sample_rate: int = 16000, n_fft: int = 400, hop: int = 160, n_mels: int = 40,
                 trim_silence: bool = True, normalize_db: float | None = -30.0, pad_mode: str = "constant"):
        if trim_silence and sample_rate not in VAD_SAMPLE_RATES:
            raise SpkidError(f"resemblyzer-mel: silence trimming (webrtcvad) needs a sample rate in "
                             f"{VAD_SAMPLE_RATES}, got {sample_rate}")
        if pad_mode not in ("constant", "reflect"):
            raise SpkidError(f"resemblyzer-mel: pad_mode must be 'constant' or 'reflect', got '{pad_mode}'")
        if min(sample_rate, n_fft, hop, n_mels) <= 0:
            raise SpkidError("resemblyzer-mel: sample_rate, n_fft, hop and n_mels must be positive")
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop = int(hop)
        self.n_mels = int(n_mels)
        self.trim_silence = bool(trim_silence)
        self.normalize_db = None if normalize_db is None else float(normalize_db)
        self.pad_mode = pad_mode
        import scipy.sparse

        self._filters = scipy.sparse.csr_matrix(mel_filters(self.sample_rate, self.n_fft, self.n_mels))

    @classmethod
    def from_config(cls, config: dict) -> ResemblyzerFrontend:
        config = dict(config)
        config.pop("type", None)
        known = ("sample_rate", "n_fft", "hop", "n_mels", "trim_silence", "normalize_db", "pad_mode")
        unknown = sorted(set(config) - set(known))
        if unknown:
            raise SpkidError(f"unknown resemblyzer-mel option(s): {', '.join(unknown)}")
        return cls(**config)

    def to_config(self) -> dict:
        return {"type": "resemblyzer-mel", "sample_rate": self.sample_rate, "n_fft": self.n_fft,
                "hop": self.hop, "n_mels": self.n_mels, "trim_silence": self.trim_silence,
                "normalize_db": self.normalize_db, "pad_mode": self.pad_mode}

    @property
    def dim(self) -> int:
        return self.n_mels

    def preprocess(self, wave: np.ndarray) -> np.ndarray:
        """Resemblyzer's preprocess_wav on a waveform already at `sample_rate`: float32 out."""
        wav = np.asarray(wave, dtype=np.float32)
        if wav.ndim != 1:
            raise SpkidError(f"resemblyzer-mel expects a mono waveform, got shape {wav.shape}")
        if self.normalize_db is not None:
            wav = normalize_volume(wav, np.float32(self.normalize_db), increase_only=True)
        if self.trim_silence:
            wav = trim_long_silences(wav, self.sample_rate)
        return wav

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        wav = self.preprocess(wave)
        if len(wav) == 0:
            what = "no voiced audio left after silence trimming" if self.trim_silence else "empty waveform"
            raise SpkidError(f"resemblyzer-mel: {what} ({len(wave)} samples in)")
        return mel_power_spectrogram(wav, self.sample_rate, self.n_fft, self.hop, self.n_mels,
                                     self.pad_mode, self._filters)
