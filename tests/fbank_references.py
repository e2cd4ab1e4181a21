"""Reference fbank implementations the tests compare spkid's `compute_fbank` with: kaldi-native-fbank's
per-frame `OnlineFbank` (the reference) and lhotse's torch port of Kaldi's code."""
from __future__ import annotations

import warnings

import numpy as np

from spkid.errors import SpkidError
from spkid.features.fbank import FbankOptions, knf_options
from spkid.kaldi.audio import KALDI_SCALE


def fbank_knf(wave: np.ndarray, opts: FbankOptions) -> np.ndarray:
    """The same features through kaldi-native-fbank's per-frame `OnlineFbank` (the reference)."""
    import kaldi_native_fbank as knf

    fb = knf.OnlineFbank(knf_options(opts))
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
