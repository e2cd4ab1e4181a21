"""spkid wav-reverberate against a literal transcription of Kaldi's C++ (the oracle below), hand-checked
cases (SNR, RIR peak shift, lengths), and Kaldi-style augmented wav.scp lines read by compute-fbank."""
from __future__ import annotations

import io
import math
import os

import numpy as np
import pytest
import soundfile as sf
from kaldi_oracle import (
    f32,
    fft_based_block_convolve_signals,
    int16_wav,
    kaldi_wav_reverberate,
    read_int16,
    synthetic_rir,
)


@pytest.fixture
def clips(shared_data, tmp_path):
    """A 1 s 16 kHz speech clip, a longer speech clip used as noise, a short white noise, an RIR (peak 37)."""
    speech = sorted((shared_data / "arabic_speech_commands").glob("*/*.flac"))[0]
    long_noise = sorted((shared_data / "vctk_mini").glob("*/*.flac"))[0]
    rng = np.random.default_rng(1)
    white = int16_wav(tmp_path / "white.wav", rng.normal(0, 3000, 4000), 16000)
    rir = int16_wav(tmp_path / "rir.wav", synthetic_rir(16000, 3000, 37), 16000)
    return {"speech": str(speech), "babble": str(long_noise), "white": white, "rir": rir}


def run_reverberate(run, args: list[str]) -> np.ndarray:
    proc = run(["spkid", "wav-reverberate", *args, "-"])
    return read_int16(proc.stdout)[0]


def within_one_lsb(ours, expected):
    assert np.abs(ours.astype(float) - expected).max() <= 1


def assert_matches_oracle(ours: np.ndarray, kaldi: np.ndarray):
    assert ours.shape == kaldi.shape
    diff = np.abs(ours.astype(int) - kaldi.astype(int))
    assert diff.max() <= 1, f"max difference {diff.max()} LSB"
    assert np.mean(diff) < 0.05  # off-by-one only where float32 and float64 truncate differently


# ---- against the oracle ----

@pytest.mark.parametrize("options", [
    {},
    {"shift_output": False},
    {"volume": 0.5},
    {"normalize_output": False},
    {"duration": 2.3},
    {"duration": 0.4},
])
def test_rir_and_noises_match_kaldi(run, clips, options):
    speech, rate = read_int16(clips["speech"])
    rir, _ = read_int16(clips["rir"])
    white, _ = read_int16(clips["white"])
    babble, _ = read_int16(clips["babble"])
    args = [f"--impulse-response={clips['rir']}", f"--additive-signals={clips['white']},{clips['babble']}",
            "--snrs=5,12.5", "--start-times=0.3,0"]
    for name, value in options.items():
        args.append(f"--{name.replace('_', '-')}={str(value).lower()}")
    ours = run_reverberate(run, [*args, clips["speech"]])
    kaldi = kaldi_wav_reverberate(speech, rate, rir, rate, [white, babble], [5, 12.5], [0.3, 0], **options)
    assert_matches_oracle(ours, kaldi)


def test_noise_only_and_nested_duration_pipe_match_kaldi(run, clips):
    """A background noise repeated to the speech length by a nested wav-reverberate (augment_data_dir style)."""
    speech, rate = read_int16(clips["speech"])
    white, _ = read_int16(clips["white"])
    ours = run_reverberate(run, [f"--additive-signals=wav-reverberate --duration=1.0 {clips['white']} - |",
                                 "--snrs=10", "--start-times=0", clips["speech"]])
    repeated = kaldi_wav_reverberate(white, rate, duration=1.0)
    assert len(repeated) == 16000 and np.array_equal(repeated[4000:8000], repeated[:4000])
    assert_matches_oracle(ours, kaldi_wav_reverberate(speech, rate, noises=[repeated], snrs=[10], start_times=[0]))


def test_oracle_convolution_is_a_convolution():
    """The transcribed block convolution equals direct convolution (guards the oracle itself)."""
    rng = np.random.default_rng(0)
    sig, filt = rng.standard_normal(5000).astype(f32), rng.standard_normal(300).astype(f32)
    np.testing.assert_allclose(fft_based_block_convolve_signals(filt, sig), np.convolve(sig, filt), atol=1e-3)


def test_channels_match_kaldi(run, clips, tmp_path):
    speech, rate = read_int16(clips["speech"])
    white, _ = read_int16(clips["white"])
    rirs = [synthetic_rir(rate, 2500, 20, seed=1), synthetic_rir(rate, 2500, 90, seed=2)]
    stereo_rir = int16_wav(tmp_path / "rir2.wav", np.stack(rirs, axis=1), rate)
    stereo_in = int16_wav(tmp_path / "in2.wav", np.stack([speech[::-1], speech], axis=1), rate)
    stereo_noise = int16_wav(tmp_path / "n2.wav", np.stack([white, white[::-1]], axis=1), rate)
    common = [f"--impulse-response={stereo_rir}", f"--additive-signals={stereo_noise}", "--snrs=3", "--start-times=0.1"]
    out = read_int16(run(["spkid", "wav-reverberate", "--multi-channel-output=true", "--input-wave-channel=1",
                          *common, stereo_in, "-"]).stdout)[0]
    assert out.shape == (len(speech), 2)
    for chan in (0, 1):
        noise = white if chan == 0 else white[::-1]
        assert_matches_oracle(out[:, chan], kaldi_wav_reverberate(speech, rate, rirs[chan], rate, [noise], [3], [0.1]))
    one = run_reverberate(run, ["--rir-channel=1", "--noise-channel=1", *common, stereo_in])
    assert_matches_oracle(one, kaldi_wav_reverberate(speech[::-1], rate, rirs[1], rate, [white[::-1]], [3], [0.1]))


# ---- hand-checked ----

def test_measured_snr_of_a_noise_only_mix(run, clips, tmp_path):
    speech, rate = read_int16(clips["speech"])
    noise = int16_wav(tmp_path / "n.wav", np.random.default_rng(5).normal(0, 2000, len(speech)), rate)
    for snr in (0.0, 7.5, 15.0):
        out = run_reverberate(run, ["--normalize-output=false", f"--additive-signals={noise}", f"--snrs={snr}",
                                    "--start-times=0", clips["speech"]])
        added = out.astype(float) - speech
        measured = 10 * np.log10(np.sum(speech.astype(float) ** 2) / np.sum(added ** 2))
        assert abs(measured - snr) < 0.1, (snr, measured)


def test_delta_rir_shifts_by_its_peak(run, clips, tmp_path):
    speech, rate = read_int16(clips["speech"])
    k, m = 100, 400
    delta = np.zeros(m, np.int16)
    delta[k] = 16384  # 0.5 after Kaldi's 1/2^15
    rir = int16_wav(tmp_path / "delta.wav", delta, rate)
    half = np.trunc(speech / 2).astype(np.int16)
    shifted = run_reverberate(run, ["--normalize-output=false", f"--impulse-response={rir}", clips["speech"]])
    within_one_lsb(shifted, half)  # the peak shift undoes the delay (FFT rounding may flip a truncation)
    unshifted = run_reverberate(run, ["--normalize-output=false", "--shift-output=false",
                                      f"--impulse-response={rir}", clips["speech"]])
    n = len(speech)
    assert len(unshifted) == n + m - 1
    within_one_lsb(unshifted[:k], np.zeros(k))
    within_one_lsb(unshifted[k:n], half[:n - k])
    assert np.array_equal(unshifted[n:], unshifted[:m - 1])  # Kaldi repeats the start to fill n + m - 1
    normalised = run_reverberate(run, [f"--impulse-response={rir}", clips["speech"]])
    gain = math.sqrt((n + m - 1) / n)  # power after reverb is measured over n + m - 1 samples
    np.testing.assert_allclose(normalised, np.clip(speech * gain, -32768, 32767), atol=1.0)


def test_lengths_and_wav_format(run, clips):
    proc = run(["spkid", "wav-reverberate", "--duration=2.3", clips["speech"], "-"])
    header = proc.stdout[:44]
    assert header[:4] == b"RIFF" and header[8:16] == b"WAVEfmt " and header[36:40] == b"data"
    assert int.from_bytes(header[40:44], "little") == 36800 * 2  # float32 16000 * 2.3 = 36800, not 36799
    out, rate = read_int16(proc.stdout)
    speech, _ = read_int16(clips["speech"])
    assert rate == 16000 and len(out) == 36800
    assert np.array_equal(out[:len(speech)], speech) and np.array_equal(out[len(speech):2 * len(speech)], speech)


def test_clipping_truncation_and_files(run, clips, tmp_path):
    out_path = tmp_path / "out.wav"
    run(["spkid", "wav-reverberate", "--volume=1.7", clips["speech"], str(out_path)])
    speech, _ = read_int16(clips["speech"])
    out, _ = read_int16(str(out_path))
    expected = np.clip(np.trunc(speech * np.float64(f32(1.7))), -32768, 32767)
    assert np.array_equal(out, expected)
    run(["spkid", "wav-reverberate", "--volume=1.7", clips["speech"], f"| cat > {tmp_path / 'piped.wav'}"])
    assert (tmp_path / "piped.wav").read_bytes() == out_path.read_bytes()
    stdin = run(f"spkid wav-reverberate --volume=0.3 - - < {clips['white']}").stdout
    assert np.array_equal(read_int16(stdin)[0], np.trunc(read_int16(clips["white"])[0] * np.float64(f32(0.3))))


def test_bad_input_is_one_line(run, clips, tmp_path, shared_data):
    proc = run(["spkid", "wav-reverberate", f"--additive-signals={clips['white']}", clips["speech"], "-"],
               check=False)
    assert proc.returncode == 1 and b"requires --snrs and --start-times" in proc.stderr
    assert b"Traceback" not in proc.stderr
    eight_k = sorted((shared_data / "fsdd").glob("*/*.flac"))[0]
    out = tmp_path / "never.wav"
    proc = run(["spkid", "wav-reverberate", f"--additive-signals={eight_k}", "--snrs=0", "--start-times=0",
                clips["speech"], str(out)], check=False)
    assert proc.returncode == 1 and b"sampling rate 8000" in proc.stderr and not out.exists()
    proc = run(["spkid", "wav-reverberate", str(tmp_path / "missing.wav"), "-"], check=False)
    assert proc.returncode == 1 and b"missing.wav" in proc.stderr and b"Traceback" not in proc.stderr


def test_non_finite_input_rir_or_noise_is_refused_not_silenced(run, clips, tmp_path):
    """Bug 10: NaN input or RIR gave a silent file with exit 0; a NaN noise was called silent (UX 5)."""
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(16000, np.nan, np.float32), 16000, subtype="FLOAT")
    out = tmp_path / "out.wav"
    for args, what in (([str(nan)], "input wave"), ([f"--impulse-response={nan}", clips["speech"]], "impulse response"),
                       ([f"--additive-signals={nan}", "--snrs=0", "--start-times=0", clips["speech"]],
                        "additive signal")):
        proc = run(["spkid", "wav-reverberate", *args, str(out)], check=False, text=True)
        assert proc.returncode == 1 and not out.exists(), proc.stderr
        assert proc.stderr.strip().splitlines() == [f"Error: {what} '{nan}' has 16000 non-finite samples (NaN or inf), "
                                                    "the first at sample 0"], proc.stderr
    from spkid.augment.reverberate import scale_to_snr

    with pytest.raises(ValueError, match="non-finite samples"):
        scale_to_snr(np.array([0.1, np.nan]), 1.0, 10)


def test_long_duration_is_streamed_in_bounded_memory(clips, tmp_path):
    """UX 2: --duration=100000 was OOM-killed at 24 GB (the output was materialised several times in float64).
    The output is written as the 16-bit input repeated block by block: 10 minutes (19 MB of wav) take less
    memory than one float64 copy of them, and the file equals the repetition."""
    import tracemalloc

    from spkid.bin.wav_reverberate import main

    out = tmp_path / "long.wav"
    tracemalloc.start()
    try:
        main([f"--impulse-response={clips['rir']}", "--duration=600", clips["speech"], str(out)], standalone_mode=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    num_out = 600 * 16000
    assert peak < num_out * 8 / 2, f"peak {peak / 1e6:.0f} MB of allocations for a {num_out * 2 / 1e6:.0f} MB wav"
    long, rate = read_int16(str(out))
    short = run_reverberate_in_process([f"--impulse-response={clips['rir']}", clips["speech"]], tmp_path)
    assert rate == 16000 and len(long) == num_out
    reps = num_out // len(short)
    assert np.array_equal(long[:reps * len(short)].reshape(reps, -1), np.tile(short, (reps, 1)))
    assert np.array_equal(long[reps * len(short):], short[:num_out - reps * len(short)])


def run_reverberate_in_process(args: list[str], tmp_path) -> np.ndarray:
    from spkid.bin.wav_reverberate import main

    main([*args, str(tmp_path / "short.wav")], standalone_mode=False)
    return read_int16(str(tmp_path / "short.wav"))[0]


def test_a_duration_past_what_a_wav_holds_is_one_line(run, clips, tmp_path):
    proc = run(["spkid", "wav-reverberate", "--duration=200000", clips["speech"], str(tmp_path / "x.wav")],
               check=False, text=True)
    assert proc.returncode == 1 and not (tmp_path / "x.wav").exists()
    assert proc.stderr.strip().splitlines() == ["Error: 3200000000 samples x 1 channel(s) at 16000 Hz (55.6 hours) "
                                                "are more than a 16-bit wav file holds (2147483629 samples, 4 GiB)"]


# ---- Kaldi-style augmented wav.scp read by spkid tools (the utils/wav-reverberate shim) ----

def mixed_wav(path, speech, rir=None, noises=(), snrs=(), start_times=(), noise_duration=0.0):
    """The mix made directly with spkid.augment (noises first repeated to noise_duration, as 16-bit wavs)."""
    from spkid.augment.reverberate import reverberate
    from spkid.kaldi.audio import kaldi_wav_bytes, read_audio

    def load(p):
        return read_audio(p)[0]

    def int16_roundtrip(wave, rate):
        return sf.read(io.BytesIO(kaldi_wav_bytes(wave, rate)[0]), dtype="float32")[0]

    wave, rate = read_audio(speech)
    noise_waves = [load(n) for n in noises]
    if noise_duration:
        noise_waves = [int16_roundtrip(reverberate(n, rate, duration=noise_duration), rate) for n in noise_waves]
    out = reverberate(wave, rate, None if rir is None else load(rir), rate, noise_waves, snrs, start_times)
    path.write_bytes(kaldi_wav_bytes(out, rate)[0])
    return str(path)


def test_augmented_wav_scp_through_compute_fbank(run, clips, tmp_path):
    from spkid.kaldi.io import read_dict

    s, w, b, r = clips["speech"], clips["white"], clips["babble"], clips["rir"]
    (tmp_path / "aug").mkdir()
    (tmp_path / "aug" / "wav.scp").write_text(
        f"""a-babble wav-reverberate --shift-output=true """
        f"""--additive-signals='wav-reverberate --duration=1.0 "{b}" - |,"""
        f"""wav-reverberate --duration=1.0 "{w}" - |' --start-times='0,0' --snrs='15,13' {s} - |\n"""
        f"b-noise wav-reverberate --shift-output=true --additive-signals='{w}' --start-times='0.2' --snrs='5' {s} - |\n"
        f"""c-reverb cat {s} | wav-reverberate --shift-output=true --impulse-response="{r}" - - |\n""")
    direct = {"a-babble": mixed_wav(tmp_path / "a.wav", s, noises=[b, w], snrs=[15, 13], start_times=[0, 0],
                                    noise_duration=1.0),
              "b-noise": mixed_wav(tmp_path / "b.wav", s, noises=[w], snrs=[5], start_times=[0.2]),
              "c-reverb": mixed_wav(tmp_path / "c.wav", s, rir=r)}
    (tmp_path / "direct.scp").write_text("".join(f"{u} {p}\n" for u, p in direct.items()))
    (tmp_path / "clean.scp").write_text(f"clean {s}\n")
    for name, scp in (("aug", tmp_path / "aug" / "wav.scp"), ("direct", tmp_path / "direct.scp"),
                      ("clean", tmp_path / "clean.scp")):
        run(["spkid", "compute-fbank", "--dither=0", f"scp:{scp}", f"ark:{tmp_path}/{name}.ark"])
    aug, ref = read_dict(f"ark:{tmp_path}/aug.ark"), read_dict(f"ark:{tmp_path}/direct.ark")
    clean = read_dict(f"ark:{tmp_path}/clean.ark")["clean"]
    assert sorted(aug) == sorted(ref) == sorted(direct)
    for utt in ref:
        np.testing.assert_array_equal(aug[utt], ref[utt])
        assert aug[utt].shape == clean.shape and np.abs(aug[utt] - clean).mean() > 0.1  # really augmented


def test_pipes_find_the_shim_without_path_setup(clips, monkeypatch):
    """spkid's wav.scp pipes append utils/ (the shim) and the venv's bin to PATH themselves."""
    from spkid.kaldi.audio import read_audio

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    half, _ = read_audio(f"wav-reverberate --volume=0.5 {clips['speech']} - |")
    speech, _ = read_audio(clips["speech"])
    assert np.abs(half - speech * np.float32(0.5)).max() <= 1 / 32768


# ---- in-process pipes (spkid.augment.pipes) ----

def kaldi_style_lines(clips) -> list[str]:
    s, w, b, r = clips["speech"], clips["white"], clips["babble"], clips["rir"]
    return [f"""wav-reverberate --shift-output=true --additive-signals='wav-reverberate --duration=1.0 "{b}" - |,"""
            f"""wav-reverberate --duration=1.0 "{w}" - |' --start-times='0,0' --snrs='15,13' {s} - |""",
            f"""cat {s} | wav-reverberate --shift-output=true --impulse-response="{r}" --additive-signals='cat {w} """
            f"""| wav-reverberate --impulse-response="{r}"  - - |' --start-times='0.62' --snrs='0.0'  - - |""",
            f"wav-reverberate --volume=2.5 {s} - | wav-reverberate --duration=0.3 - - |"]


def test_inline_pipes_equal_the_shell(clips, monkeypatch):
    from spkid.augment.inline import register
    from spkid.kaldi import audio

    register()  # as the command line does at start-up

    lines = kaldi_style_lines(clips)
    shell = {}
    for line in lines:
        monkeypatch.setenv("SPKID_INLINE_PIPES", "0")
        shell[line] = audio.read_audio(line)
        monkeypatch.setenv("SPKID_INLINE_PIPES", "1")
        inline = audio.read_audio(line)
        assert np.array_equal(shell[line][0], inline[0]) and shell[line][1] == inline[1]
    assert len(inline[0]) == int(f32(16000) * f32(0.3))

    def no_shell(*args, **kw):
        raise AssertionError("the shell was used")

    monkeypatch.setattr(audio.subprocess, "run", no_shell)  # pure wav-reverberate lines need no process
    assert np.array_equal(audio.read_audio(lines[0])[0], shell[lines[0]][0])
    missing = f"wav-reverberate --additive-signals=missing.wav --snrs=0 --start-times=0 {clips['speech']} - |"
    with pytest.raises(audio.AudioError, match="missing.wav"):
        audio.read_audio(missing)


def test_a_real_kaldi_first_on_path_is_used(clips, monkeypatch, tmp_path):
    from spkid.kaldi import audio

    fake = tmp_path / "bin" / "wav-reverberate"
    fake.parent.mkdir()
    fake.write_text(f"#!/bin/sh\ncat {clips['white']}\n")  # stands for Kaldi's binary
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    wave, _ = audio.read_audio(f"wav-reverberate --volume=0.5 {clips['speech']} - |")
    assert np.array_equal(wave, audio.read_audio(clips["white"])[0])
