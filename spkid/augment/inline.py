"""The in-process runner of wav-reverberate pipes, registered with spkid.kaldi.pipe_runners (light to
import: the work is imported when a pipe is read)."""
from __future__ import annotations


def run_wav_reverberate_pipes(cmd: str, env: dict[str, str]):
    """The audio of `cmd` when it is made of wav-reverberate stages (see spkid.augment.pipes), else None."""
    from spkid.augment.pipes import run_inline
    from spkid.kaldi.audio import REPO_UTILS

    return run_inline(cmd, env, REPO_UTILS / "wav-reverberate")


def register() -> None:
    from spkid.kaldi.pipe_runners import register as add

    add(run_wav_reverberate_pipes)
