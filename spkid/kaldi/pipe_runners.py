"""In-process runners of wav.scp pipe commands (`cmd |`).

A runner is `runner(cmd, env) -> (samples (n, channels) float32, rate)`, or None to leave the command to
the shell. spkid.kaldi.audio asks each registered runner before starting a shell; spkid.augment registers
one that computes pipes made of wav-reverberate stages in-process (`spkid` registers it at start-up).
Without it the same pipes run through the shell, with the same result, slower. This module imports
nothing, so registering costs nothing.
"""
from __future__ import annotations

from typing import Callable

RUNNERS: list[Callable] = []


def register(runner: Callable) -> None:
    if runner not in RUNNERS:
        RUNNERS.append(runner)
