"""wav.scp pipes made of `wav-reverberate` stages, run inside the reading process.

Augmented wav.scp lines (`wav-reverberate --additive-signals='wav-reverberate --duration=2.3 "n.wav" - |' ...
in.wav - |`, `cat in.wav | wav-reverberate ... - - |`) would start one Python per wav-reverberate (nested
ones too); here they run in-process with the same result (each stage's output is rounded to 16 bits as the
wav between processes would be). Anything else (other commands after the first stage, shell syntax beyond
quotes and `|`, a real Kaldi wav-reverberate first on PATH, SPKID_INLINE_PIPES=0) goes to the shell.
"""
from __future__ import annotations

import io
import os
import shlex
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path

import numpy as np

_SHELL_SYNTAX = set("$`\\*?[]{}~;&<>()!#\n")  # expansions, redirections, lists: leave those to bash


@lru_cache(maxsize=8)
def _ours_on_path(path: str, shim: str) -> bool:
    """True unless a wav-reverberate other than our shim (e.g. Kaldi's) comes first on PATH."""
    found = shutil.which("wav-reverberate", path=path)
    return found is None or os.path.realpath(found) == os.path.realpath(shim)


def _stages(cmd: str) -> list[list[str]] | None:
    if os.environ.get("SPKID_INLINE_PIPES", "1") == "0" or _SHELL_SYNTAX & set(cmd):
        return None
    lexer = shlex.shlex(cmd, posix=True, punctuation_chars="|")
    lexer.whitespace_split = True
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes
        return None
    stages: list[list[str]] = [[]]
    for token in tokens:
        if token == "|":
            stages.append([])
        elif set(token) == {"|"}:  # '||'
            return None
        else:
            stages[-1].append(token)
    return stages if all(stages) else None


def _parse_wav_reverberate(args: list[str]):
    """(options, wav_in, wav_out) of a wav-reverberate stage, or None if click rejects it."""
    import click

    from spkid.augment.command import WavReverberateOptions
    from spkid.bin.wav_reverberate import main

    try:
        ctx = main.make_context("wav-reverberate", list(args))
    except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
        return None
    params = dict(ctx.params)
    return WavReverberateOptions(**{k: v for k, v in params.items() if k not in ("wav_in", "wav_out")}), \
        params["wav_in"], params["wav_out"]


def _to_int16_levels(data: np.ndarray) -> np.ndarray:
    """What writing a Kaldi wav and reading it back gives: trunc(x * 2^15), clipped, over 2^15."""
    from spkid.kaldi.audio import KALDI_SCALE

    return (np.clip(np.trunc(data * KALDI_SCALE), -32768, 32767) / KALDI_SCALE).astype(np.float32)


def run_inline(cmd: str, env: dict[str, str], shim: Path) -> tuple[np.ndarray, int] | None:
    """The audio (float32 (samples, channels), rate) of pipe command `cmd` (without its final `|`),
    computed in-process, or None when it must go to the shell. Raises AudioError when a stage fails."""
    import soundfile as sf

    from spkid.augment.command import wav_reverberate
    from spkid.errors import SpkidError
    from spkid.kaldi.audio import AudioError, read_audio_channels

    stages = _stages(cmd)
    if stages is None or not _ours_on_path(env.get("PATH", ""), str(shim)):
        return None
    parsed = [_parse_wav_reverberate(s[1:]) if s[0] == "wav-reverberate" else None for s in stages]
    if all(p is None for p in parsed):
        return None  # no wav-reverberate stage: an ordinary pipe, run by the shell
    if any(p is None for p in parsed[1:]) or any(p[2] != "-" for p in parsed if p is not None):
        return None
    if any(p[1] != "-" for p in parsed[1:]) or (parsed[0] is not None and parsed[0][1] == "-"):
        return None  # stdin of the whole command, or a stage ignoring its input: leave it to the shell
    data: np.ndarray | None = None
    rate = 0
    if parsed[0] is None:  # a first command (cat, sox, flac ...) feeding wav-reverberate
        try:
            proc = subprocess.run(stages[0], capture_output=True, env=env)
        except OSError:
            return None  # e.g. no such command: the shell reports it
        if proc.returncode != 0 or not proc.stdout:
            return None
        try:
            data, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32", always_2d=True)
        except Exception as err:  # soundfile raises LibsndfileError / RuntimeError
            reason = getattr(err, "error_string", None) or str(err)
            raise AudioError(f"cannot decode audio from the output of command '{shlex.join(stages[0])}' "
                             f"(in '{cmd}'): {reason}") from None
    try:
        for i, p in enumerate(parsed):
            if p is None:
                continue
            opts, wav_in, _ = p
            if data is None:
                data, rate = read_audio_channels(wav_in)
            data = _to_int16_levels(wav_reverberate(data, rate, opts, wav_in if i == 0 else "-"))
    except (SpkidError, AudioError) as err:
        raise AudioError(f"command '{cmd}' failed: {err}") from None
    return data, int(rate)
