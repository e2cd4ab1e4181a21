"""Kaldi log mel filterbanks (compute-fbank-feats), vectorised over whole utterances.

Options and defaults are Kaldi's (`FbankOptions` fields are Kaldi's option names with `_`), including
its conventions that not every library defaults to: int16 sample scale, `--snip-edges=true`,
`--dither=1.0`, povey window. `compute_fbank` runs Kaldi's per-frame algorithm (dither, DC removal,
raw energy, pre-emphasis, window, FFT, power, mel banks, log) on all frames of an utterance at once
in float32 NumPy/SciPy, with the window and mel-bank tables of kaldi-native-fbank; the few frames
where float32 rounding would show (a near-silent band beside loud ones) are recomputed in float64.
It agrees with kaldi-native-fbank's per-frame `OnlineFbank` (the reference) to float32 rounding, is
closer than it to a float64 computation, and is several times faster. lhotse's torch implementation
of the same features serves as a second, independent port: tests/fbank_references.py has both, and
the tests compare the three.
"""
from __future__ import annotations

from dataclasses import asdict, astuple, dataclass, field, fields, replace

import numpy as np

from spkid.errors import SpkidError
from spkid.kaldi.audio import KALDI_SCALE


def opt(default, help: str):
    return field(default=default, metadata={"help": help})


@dataclass
class FrameOptions:
    """Kaldi FrameExtractionOptions (shared by fbank and the energy VAD)."""

    sample_frequency: float = opt(16000.0, "Waveform data sample frequency (must match the data)")
    frame_length: float = opt(25.0, "Frame length in milliseconds")
    frame_shift: float = opt(10.0, "Frame shift in milliseconds")
    dither: float = opt(1.0, "Dithering constant (0.0 means no dither)")
    preemphasis_coefficient: float = opt(0.97, "Coefficient for use in signal preemphasis")
    remove_dc_offset: bool = opt(True, "Subtract mean from waveform on each frame")
    window_type: str = opt("povey", "Window type: hamming|hanning|povey|rectangular|sine|blackman")
    round_to_power_of_two: bool = opt(True, "Round window size to a power of two for the FFT")
    blackman_coeff: float = opt(0.42, "Constant coefficient for generalized Blackman window")
    snip_edges: bool = opt(True, "Output only frames that fit completely in the file (Kaldi default)")

    def frame_samples(self) -> tuple[int, int]:
        """(window length, shift) in samples, as Kaldi computes them."""
        return (int(self.sample_frequency * 0.001 * self.frame_length),
                int(self.sample_frequency * 0.001 * self.frame_shift))

    def num_frames(self, num_samples: int) -> int:
        """Kaldi's NumFrames(num_samples, opts, flush=true)."""
        length, shift = self.frame_samples()
        if self.snip_edges:
            return 0 if num_samples < length else 1 + (num_samples - length) // shift
        return (num_samples + shift // 2) // shift


@dataclass
class FbankOptions(FrameOptions):
    """Kaldi FbankOptions (compute-fbank-feats)."""

    num_mel_bins: int = opt(23, "Number of triangular mel-frequency bins")
    low_freq: float = opt(20.0, "Low cutoff frequency for mel bins")
    high_freq: float = opt(0.0, "High cutoff frequency for mel bins (if <= 0, offset from Nyquist)")
    vtln_low: float = opt(100.0, "Low inflection point in piecewise linear VTLN warping function")
    vtln_high: float = opt(-500.0, "High inflection point in VTLN warping (if <= 0, offset from Nyquist)")
    use_energy: bool = opt(False, "Add an extra dimension with energy to the FBANK output")
    energy_floor: float = opt(0.0, "Floor on energy (absolute, not relative) in FBANK computation")
    raw_energy: bool = opt(True, "If true, compute energy before preemphasis and windowing")
    htk_compat: bool = opt(False, "If true, put energy last")
    use_log_fbank: bool = opt(True, "If true, produce log-filterbank, else produce linear")
    use_power: bool = opt(True, "If true, use power, else use magnitude")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, config: dict) -> FbankOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise SpkidError(f"unknown fbank option(s): {', '.join(unknown)}")
        defaults = {f.name: f.default for f in fields(cls)}
        return cls(**{k: typed_option(k, v, defaults[k]) for k, v in config.items()})

    @property
    def dim(self) -> int:
        return self.num_mel_bins + int(self.use_energy)


def typed_option(name: str, value, default):
    """An option value with the type of its default (one line naming the option when it has none)."""
    kind = type(default)
    try:
        if kind is bool:
            if isinstance(value, str) and value.lower() in ("true", "false"):
                return value.lower() == "true"
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise ValueError
        if kind is int and not isinstance(value, bool):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind is float and not isinstance(value, bool) and np.isfinite(float(value)):
            return float(value)
        if kind is str and isinstance(value, str):
            return value
    except (TypeError, ValueError, OverflowError):
        pass
    else:
        if kind not in (bool, int, float, str):
            return value
    wanted = {bool: "true/false", int: "a whole number", float: "a finite number", str: "a string"}[kind]
    raise SpkidError(f"--{name.replace('_', '-')} wants {wanted}, got {value!r}")


def knf_options(opts: FbankOptions):
    """The kaldi-native-fbank options equal to `opts`."""
    import kaldi_native_fbank as knf

    o = knf.FbankOptions()
    f = o.frame_opts
    f.samp_freq = float(opts.sample_frequency)
    f.frame_length_ms = float(opts.frame_length)
    f.frame_shift_ms = float(opts.frame_shift)
    f.dither = float(opts.dither)
    f.preemph_coeff = float(opts.preemphasis_coefficient)
    f.remove_dc_offset = bool(opts.remove_dc_offset)
    f.window_type = opts.window_type
    f.round_to_power_of_two = bool(opts.round_to_power_of_two)
    f.blackman_coeff = float(opts.blackman_coeff)
    f.snip_edges = bool(opts.snip_edges)
    m = o.mel_opts
    m.num_bins = int(opts.num_mel_bins)
    m.low_freq = float(opts.low_freq)
    m.high_freq = float(opts.high_freq)
    m.vtln_low = float(opts.vtln_low)
    m.vtln_high = float(opts.vtln_high)
    o.use_energy = bool(opts.use_energy)
    o.energy_floor = float(opts.energy_floor)
    o.raw_energy = bool(opts.raw_energy)
    o.htk_compat = bool(opts.htk_compat)
    o.use_log_fbank = bool(opts.use_log_fbank)
    o.use_power = bool(opts.use_power)
    return o


def check_options(opts: FbankOptions) -> None:
    """Reject option values Kaldi would reject, with a clear message."""
    if not opts.sample_frequency > 0:
        raise SpkidError(f"--sample-frequency must be > 0, got {opts.sample_frequency:g}")
    nyquist = opts.sample_frequency / 2
    high = opts.high_freq if opts.high_freq > 0 else nyquist + opts.high_freq
    if opts.window_type not in ("hamming", "hanning", "povey", "rectangular", "sine", "blackman"):
        raise SpkidError(f"--window-type={opts.window_type}: unknown window type")
    if not (0 <= opts.low_freq < high <= nyquist):
        raise SpkidError(f"bad mel range: --low-freq={opts.low_freq} --high-freq={opts.high_freq} "
                         f"with Nyquist {nyquist:g} Hz")
    if opts.num_mel_bins < 3:
        raise SpkidError("--num-mel-bins must be at least 3")
    length, shift = opts.frame_samples()
    if shift <= 0 or length <= 0:
        raise SpkidError("--frame-length and --frame-shift must give at least one sample")


_EPS = np.float32(np.finfo(np.float32).eps)  # Kaldi's floor before a log (FLT_EPSILON)
_FLOAT64_BELOW = np.float32(1e-9)  # a frame whose weakest mel band (per FFT bin) holds less of its power


class KaldiFbank:
    """Kaldi's fbank for one set of options, computed on all frames of an utterance at once.

    The window and mel-bank tables are kaldi-native-fbank's own, so only the order of float32
    operations (FFT, sums) differs from its per-frame loop. NumPy and SciPy's FFT release the GIL
    and the mel product is a (single-threaded) sparse one: several threads may share one instance.
    """

    def __init__(self, opts: FbankOptions):
        import kaldi_native_fbank as knf
        import scipy.sparse

        ko = knf_options(opts)
        self.opts = opts
        self.length, self.shift = opts.frame_samples()
        self.padded = 1 << (self.length - 1).bit_length() if opts.round_to_power_of_two else self.length
        self.window = np.asarray(knf.FeatureWindowFunction(ko.frame_opts).window, dtype=np.float32)
        mel = np.asarray(knf.MelBanks(ko.mel_opts, ko.frame_opts, 1.0).get_matrix(), dtype=np.float32)
        # (padded // 2 + 1, bins), sparse: faster than BLAS for triangular filters, and single-threaded
        self.mel_t = scipy.sparse.csc_matrix(mel.T)
        self.mel_area = np.maximum(mel.sum(axis=1), np.float32(1e-30))
        self.log_energy_floor = np.float32(np.log(opts.energy_floor)) if opts.energy_floor > 0 else None

    def frames(self, x: np.ndarray) -> np.ndarray:
        """(num_frames, length) frames of a scaled waveform, as Kaldi's ExtractWindow cuts them."""
        n = self.opts.num_frames(len(x))
        if self.opts.snip_edges:
            return np.lib.stride_tricks.as_strided(x, (n, self.length), (self.shift * x.itemsize, x.itemsize),
                                                   writeable=False)
        start = np.arange(n) * self.shift + self.shift // 2 - self.length // 2
        index = start[:, None] + np.arange(self.length)[None, :]
        while True:  # reflect at both ends (repeatedly, for waves shorter than a frame)
            low, high = index < 0, index >= len(x)
            if not (low.any() or high.any()):
                break
            index = np.where(low, -index - 1, np.where(high, 2 * len(x) - 1 - index, index))
        return x[index]

    def __call__(self, wave: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """(num_frames, dim) float32 features of a float waveform in [-1, 1)."""
        o = self.opts
        x = np.asarray(wave, dtype=np.float32) * np.float32(KALDI_SCALE)
        n = o.num_frames(len(x))
        if n == 0:
            return np.zeros((0, o.dim), dtype=np.float32)
        frames = self.frames(x)
        if o.dither != 0.0:
            rng = rng if rng is not None else np.random.default_rng()
            frames = frames + np.float32(o.dither) * rng.standard_normal(frames.shape, dtype=np.float32)
        buf, energy = self._prepare(frames, np.float32)
        feats = self._mel(buf, frames)
        if energy is not None:
            energy = np.log(np.maximum(energy, _EPS))
            if self.log_energy_floor is not None:
                energy = np.maximum(energy, self.log_energy_floor)
            parts = [feats, energy[:, None]] if o.htk_compat else [energy[:, None], feats]
            feats = np.concatenate(parts, axis=1)
        return np.ascontiguousarray(feats)

    def _prepare(self, frames: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray | None]:
        """DC removal, (raw) energy, pre-emphasis and window: ((n, padded) FFT input, energy or None)."""
        o = self.opts
        energy = mean = None
        if dtype is not np.float32:
            frames = frames.astype(dtype)
        if o.remove_dc_offset:
            mean = frames.mean(axis=1, keepdims=True, dtype=dtype)
            if o.use_energy and o.raw_energy:
                frames, mean = frames - mean, None
        if o.use_energy and o.raw_energy:
            energy = np.einsum("ij,ij->i", frames, frames)
        buf = np.zeros((len(frames), self.padded), dtype=dtype)
        body = buf[:, :self.length]
        coeff = dtype(o.preemphasis_coefficient)
        # pre-emphasis y[i] = x[i] - c x[i-1], y[0] = x[0] - c x[0]; the mean m, when not yet removed,
        # comes off as (1 - c) m from every sample of y
        np.multiply(frames[:, :-1], -coeff, out=body[:, 1:])
        body[:, 1:] += frames[:, 1:]
        body[:, 0] = frames[:, 0] - coeff * frames[:, 0]
        if mean is not None:
            body -= (dtype(1) - coeff) * mean
        body *= self.window
        if o.use_energy and not o.raw_energy:
            energy = np.einsum("ij,ij->i", body, body)
        return buf, energy

    def _mel(self, buf: np.ndarray, frames: np.ndarray) -> np.ndarray:
        from scipy.fft import rfft

        spectrum = rfft(buf, axis=1)  # complex64
        power = spectrum.real ** 2 + spectrum.imag ** 2
        mel = self._banks(power)
        # float32 rounding (mostly the FFT's) is relative to the whole frame's energy: where a mel band
        # holds less than ~1e-9 of it (a quiet band beside loud ones: about 1% of speech frames), its log
        # would be off by up to 3e-2, so those frames are computed again in float64 from their samples.
        band = (mel if self.opts.use_power else power @ self.mel_t) / self.mel_area
        weak = band.min(axis=1) < _FLOAT64_BELOW * power.sum(axis=1)
        if weak.any():
            exact = rfft(self._prepare(frames[weak], np.float64)[0], axis=1)
            mel[weak] = self._banks(exact.real ** 2 + exact.imag ** 2)
        if self.opts.use_log_fbank:
            np.maximum(mel, _EPS, out=mel)
            np.log(mel, out=mel)
        return mel

    def _banks(self, power: np.ndarray) -> np.ndarray:
        return (power if self.opts.use_power else np.sqrt(power)) @ self.mel_t


_ENGINES: dict[tuple, KaldiFbank] = {}


def _engine(opts: FbankOptions) -> KaldiFbank:
    """A cached engine for these option values (FbankOptions is mutable, hence keyed by value)."""
    key = astuple(opts)
    engine = _ENGINES.get(key)
    if engine is None:
        if len(_ENGINES) >= 16:
            _ENGINES.clear()
        engine = _ENGINES[key] = KaldiFbank(replace(opts))
    return engine


def compute_fbank(wave: np.ndarray, opts: FbankOptions, engine: KaldiFbank | None = None) -> np.ndarray:
    """Log mel filterbanks of a float waveform in [-1, 1) at opts.sample_frequency -> (frames, dim).

    `engine` (a `KaldiFbank` of the same options) saves building the tables on every call.
    """
    if engine is None:
        engine = _engine(opts)
    return engine(wave)
