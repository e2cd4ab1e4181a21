"""Kaldi log mel filterbanks (compute-fbank-feats), computed by kaldi-native-fbank.

Options and defaults are Kaldi's (`FbankOptions` fields are Kaldi's option names with `_`), including
its conventions that not every library defaults to: int16 sample scale, `--snip-edges=true`,
`--dither=1.0`, povey window. lhotse's torch implementation of the same features (`fbank_lhotse`)
serves as a second, independent port: the tests compare the two.
"""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field, fields, replace

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
        return cls(**config)

    @property
    def dim(self) -> int:
        return self.num_mel_bins + int(self.use_energy)


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


def compute_fbank(wave: np.ndarray, opts: FbankOptions, extractor_opts=None) -> np.ndarray:
    """Log mel filterbanks of a float waveform in [-1, 1) at opts.sample_frequency -> (frames, dim)."""
    import kaldi_native_fbank as knf

    fb = knf.OnlineFbank(extractor_opts if extractor_opts is not None else knf_options(opts))
    fb.accept_waveform(float(opts.sample_frequency), np.asarray(wave, dtype=np.float32) * KALDI_SCALE)
    fb.input_finished()
    n = fb.num_frames_ready
    if n == 0:
        return np.zeros((0, opts.dim), dtype=np.float32)
    return np.stack([fb.get_frame(i) for i in range(n)]).astype(np.float32, copy=False)


def fbank_lhotse(wave: np.ndarray, opts: FbankOptions) -> np.ndarray:
    """The same features through lhotse's torch port of Kaldi's code (batched, GPU-capable)."""
    import torch
    from lhotse.features.kaldi.layers import Wav2LogFilterBank

    if opts.use_energy or not opts.use_log_fbank or not opts.use_power or opts.htk_compat:
        raise SpkidError("the lhotse fbank port supports log power fbank without energy only")
    with warnings.catch_warnings():  # lhotse warns that snip_edges=True is not its own default
        warnings.simplefilter("ignore", UserWarning)
        layer = _lhotse_layer(Wav2LogFilterBank, opts)
    x = torch.from_numpy(np.asarray(wave, dtype=np.float32) * KALDI_SCALE)[None]
    with torch.no_grad():
        return layer(x)[0].numpy()


def _lhotse_layer(layer_cls, opts: FbankOptions):
    return layer_cls(
        sampling_rate=int(opts.sample_frequency), frame_length=opts.frame_length / 1000,
        frame_shift=opts.frame_shift / 1000, round_to_power_of_two=opts.round_to_power_of_two,
        remove_dc_offset=opts.remove_dc_offset, preemph_coeff=opts.preemphasis_coefficient,
        window_type=opts.window_type, dither=opts.dither, snip_edges=opts.snip_edges,
        energy_floor=opts.energy_floor, low_freq=opts.low_freq, high_freq=opts.high_freq,
        num_filters=opts.num_mel_bins)


class FbankFrontend:
    """Front-end type "kaldi-fbank": Kaldi fbank, then optionally Kaldi's energy VAD (voiced frames
    kept, as select-voiced-frames) and per-utterance mean normalisation (cmn)."""

    def __init__(self, opts: FbankOptions, cmn: bool = False, vad: dict | None = None):
        from spkid.features.vad import VadOptions

        check_options(opts)
        self.opts = opts
        self.cmn = cmn
        self.vad = VadOptions(**vad) if vad is not None else None
        if self.vad is not None:
            self.vad.check()
        self.sample_rate = int(opts.sample_frequency)
        # with VAD, compute the energy column too (it is dropped unless asked for)
        self._compute_opts = replace(opts, use_energy=True, htk_compat=False) if vad is not None else opts
        self._knf = knf_options(self._compute_opts)

    @classmethod
    def from_config(cls, config: dict) -> FbankFrontend:
        config = dict(config)
        cmn = bool(config.pop("cmn", False))
        vad = config.pop("vad", None)
        return cls(FbankOptions.from_dict(config), cmn=cmn, vad=vad)

    def to_config(self) -> dict:
        return {"type": "kaldi-fbank", "cmn": self.cmn,
                "vad": self.vad.to_dict() if self.vad is not None else None, **self.opts.to_dict()}

    @property
    def dim(self) -> int:
        return self.opts.dim

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        from spkid.features.vad import compute_vad_energy

        feats = compute_fbank(wave, self._compute_opts, self._knf)
        if self.vad is not None and len(feats):
            voiced = compute_vad_energy(feats[:, 0], self.vad) != 0
            if not self.opts.use_energy:
                feats = feats[:, 1:]
            elif self.opts.htk_compat:
                feats = np.concatenate([feats[:, 1:], feats[:, :1]], axis=1)
            if voiced.any():  # an utterance with no voiced frame keeps all (no silent drop)
                feats = feats[voiced]
        if self.cmn and len(feats):
            feats = feats - feats.mean(axis=0, keepdims=True)
        return feats
