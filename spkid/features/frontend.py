"""Front-ends turn a waveform into the features a model was trained on.

A checkpoint stores its front-end as a config dict `{"type": NAME, ...options}`; `build_frontend`
rebuilds it, so extraction from audio uses exactly the training front-end.
"""
from __future__ import annotations

import importlib
from dataclasses import replace
from typing import Protocol

import numpy as np

from spkid.errors import SpkidError
from spkid.features.fbank import FbankOptions, KaldiFbank, check_options
from spkid.features.vad import VadOptions, compute_vad_energy
from spkid.kaldi.audio import KALDI_SCALE

# type name -> "module:Class"
FRONTENDS = {
    "kaldi-fbank": "spkid.features.frontend:FbankFrontend",
    "resemblyzer-mel": "spkid.features.resemblyzer_mel:ResemblyzerFrontend",
}


class Frontend(Protocol):
    sample_rate: int

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        """Mono float waveform in [-1, 1] at `sample_rate` -> (frames, dims) float32 features."""

    def to_config(self) -> dict:
        """The dict that `build_frontend` turns back into this front-end (includes "type")."""


def select_voiced_and_normalise(feats: np.ndarray, voiced: np.ndarray | None, cmn: bool,
                                where: str = "") -> np.ndarray:
    """The front-end's last steps, shared by audio and feats.scp inputs: keep the frames whose VAD value
    is non-zero (all of them when none is: no silent drop), then subtract the utterance's mean (cmn).
    `where` prefixes the error for a VAD of another length."""
    if voiced is not None:
        voiced = np.asarray(voiced) != 0
        if len(voiced) != len(feats):
            raise SpkidError(f"{where}{len(feats)} frames but VAD has {len(voiced)}")
        if voiced.any():
            feats = feats[voiced]
    if cmn and len(feats):
        feats = feats - feats.mean(axis=0, keepdims=True)
    return feats


def resolve_kaldi_files(config: dict) -> dict:
    """kaldi-fbank configs may name Kaldi option files instead of repeating them:
    `kaldi_config: conf/fbank.conf` (fbank options; its --resample-to sets the rate) and
    `vad_config: conf/vad.conf` (energy VAD). Keys given explicitly beside them win."""
    from spkid.kaldi.config_file import config_values, dataclass_values_from_config

    config = dict(config)
    fbank_file, vad_file = config.pop("kaldi_config", None), config.pop("vad_config", None)
    base: dict = {}
    if fbank_file:
        base = dataclass_values_from_config(FbankOptions, fbank_file)
        rate = config_values(fbank_file, {"resample_to": "int"}).get("resample_to")
        if rate:
            base["sample_frequency"] = float(rate)
    if vad_file and config.get("vad") is None:
        config["vad"] = {**VadOptions().to_dict(), **dataclass_values_from_config(VadOptions, vad_file)}
    return {**base, **config}


def build_frontend(config: dict) -> Frontend:
    config = dict(config)
    if config.get("type") == "kaldi-fbank":
        config = resolve_kaldi_files(config)
    kind = config.pop("type", None)
    if kind not in FRONTENDS:
        raise SpkidError(f"unknown front-end type '{kind}' (known: {', '.join(FRONTENDS)})")
    module, cls = FRONTENDS[kind].split(":")
    return getattr(importlib.import_module(module), cls).from_config(config)


def extraction_frontend(config: dict) -> Frontend:
    """The front-end a model extracts with (loaders, export): its training front-end without dither, so the
    same audio always gives the same embedding (training may dither; extraction never does, as Kaldi's
    and WeSpeaker's extraction configs say)."""
    config = dict(config)
    if "dither" in config or config.get("type") == "kaldi-fbank":  # FbankOptions defaults to Kaldi's dither 1.0
        config["dither"] = 0.0
    return build_frontend(config)


class FbankFrontend:
    """Front-end type "kaldi-fbank": Kaldi fbank, then optionally Kaldi's energy VAD (voiced frames
    kept, as select-voiced-frames) and per-utterance mean normalisation (cmn).

    `waveform_scale` is what a full-scale sample is worth: Kaldi's 32768 (int16 samples) by default;
    1.0 is the [-1, 1] waveform that torchaudio's Kaldi fbank is usually given (3D-Speaker, WeSpeaker),
    which differs where mel energies fall under the log floor (float epsilon), e.g. in silences."""

    def __init__(self, opts: FbankOptions, cmn: bool = False, vad: dict | None = None,
                 waveform_scale: float = KALDI_SCALE):
        check_options(opts)
        if not float(waveform_scale) > 0:
            raise SpkidError(f"waveform_scale must be positive, got {waveform_scale}")
        self.opts = opts
        self.cmn = cmn
        self.waveform_scale = float(waveform_scale)
        self.vad = VadOptions(**vad) if vad is not None else None
        if self.vad is not None:
            self.vad.check()
        self.sample_rate = int(opts.sample_frequency)
        # with VAD, compute the energy column too (it is dropped unless asked for)
        self._compute_opts = replace(opts, use_energy=True, htk_compat=False) if vad is not None else opts
        self._engine = KaldiFbank(self._compute_opts)

    @classmethod
    def from_config(cls, config: dict) -> FbankFrontend:
        config = dict(config)
        cmn = bool(config.pop("cmn", False))
        vad = config.pop("vad", None)
        scale = float(config.pop("waveform_scale", KALDI_SCALE))
        return cls(FbankOptions.from_dict(config), cmn=cmn, vad=vad, waveform_scale=scale)

    def to_config(self) -> dict:
        scale = {} if self.waveform_scale == KALDI_SCALE else {"waveform_scale": self.waveform_scale}
        return {"type": "kaldi-fbank", "cmn": self.cmn,
                "vad": self.vad.to_dict() if self.vad is not None else None, **scale, **self.opts.to_dict()}

    @property
    def dim(self) -> int:
        return self.opts.dim

    def __call__(self, wave: np.ndarray) -> np.ndarray:
        if self.waveform_scale != KALDI_SCALE:
            wave = np.asarray(wave, dtype=np.float32) * np.float32(self.waveform_scale / KALDI_SCALE)
        feats = self._engine(wave)
        voiced = None
        if self.vad is not None and len(feats):
            voiced = compute_vad_energy(feats[:, 0], self.vad) != 0
            if not self.opts.use_energy:
                feats = feats[:, 1:]
            elif self.opts.htk_compat:
                feats = np.concatenate([feats[:, 1:], feats[:, :1]], axis=1)
        return select_voiced_and_normalise(feats, voiced, self.cmn)
