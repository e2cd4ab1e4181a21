"""Every spkid tool that mirrors a Kaldi binary has that binary's option defaults (values read from the
Kaldi sources cited beside them); recipes that want other values pass conf files."""
from __future__ import annotations

import importlib

import pytest

from spkid.cli import COMMANDS

# src/feat/feature-window.h FrameExtractionOptions()
FRAME = {"sample_frequency": 16000.0, "frame_shift": 10.0, "frame_length": 25.0, "dither": 1.0,
         "preemphasis_coefficient": 0.97, "remove_dc_offset": True, "window_type": "povey",
         "round_to_power_of_two": True, "blackman_coeff": 0.42, "snip_edges": True, "allow_downsample": False}
# src/feat/mel-computations.h MelBanksOptions(23) (FbankOptions: mel_opts(23))
MEL = {"num_mel_bins": 23, "low_freq": 20.0, "high_freq": 0.0, "vtln_low": 100.0, "vtln_high": -500.0}
# src/feat/feature-fbank.h FbankOptions()
FBANK = {"use_energy": False, "energy_floor": 0.0, "raw_energy": True, "htk_compat": False,
         "use_log_fbank": True, "use_power": True}
# src/featbin/compute-fbank-feats.cc main(): channel = -1, min_duration = 0.0
COMPUTE_FBANK = {**FRAME, **MEL, **FBANK, "channel": -1, "min_duration": 0.0}
# src/ivector/voice-activity-detection.h VadEnergyOptions() (compute-vad registers these)
COMPUTE_VAD = {"vad_energy_threshold": 5.0, "vad_energy_mean_scale": 0.5, "vad_frames_context": 0,
               "vad_proportion_threshold": 0.6}
# src/ivectorbin/ivector-mean.cc: bool binary_write = false
MEAN_EMBEDDINGS = {"binary": False}
# src/ivectorbin/ivector-compute-lda.cc: total_covariance_factor = 0.0, covariance_floor = 1.0e-06;
# src/ivector/plda.h PldaEstimationConfig(): num_em_iters(10) (ivector-compute-plda)
TRAIN_PLDA = {"total_covariance_factor": 0.0, "covariance_floor": 1e-6, "num_em_iters": 10}
# src/ivector/plda.h PldaConfig(): normalize_length(true), simple_length_norm(false) (ivector-plda-scoring)
SCORE = {"normalize_length": True, "simple_length_norm": False}
# egs/sre08/v1/sid/compute_min_dcf.py: --c-miss 1, --c-fa 1 (Kaldi's compute-eer itself has no options)
COMPUTE_EER = {"c_miss": 1.0, "c_fa": 1.0}

MIRRORED = {"compute-fbank": COMPUTE_FBANK, "compute-vad": COMPUTE_VAD, "mean-embeddings": MEAN_EMBEDDINGS,
            "train-plda": TRAIN_PLDA, "score": SCORE, "compute-eer": COMPUTE_EER}


def defaults(command: str) -> dict:
    main = importlib.import_module(f"spkid.bin.{COMMANDS[command]}").main
    return {p.name: p.default for p in main.params}


@pytest.mark.parametrize("command", sorted(MIRRORED))
def test_defaults_are_kaldis(command):
    have = defaults(command)
    want = MIRRORED[command]
    assert {k: have.get(k, "<absent>") for k in want} == want


def test_compute_vad_framing_is_compute_fbanks():
    """compute-vad --data/--wav frames audio as compute-fbank does (same FrameExtractionOptions defaults)."""
    have = defaults("compute-vad")
    assert {k: have[k] for k in FRAME if k in have} == {k: v for k, v in FRAME.items() if k in have}
    assert set(FRAME) - {"allow_downsample"} <= set(have)


def test_select_voiced_frames_has_no_options():
    """src/ivectorbin/select-voiced-frames.cc registers no options."""
    main = importlib.import_module("spkid.bin.select_voiced_frames").main
    assert [p.name for p in main.params if p.param_type_name == "option"] == []
