"""The `spkid` command: a click group whose commands live one per module in spkid/bin/.

Commands are imported only when run (or when help lists them), so `spkid --help` and the
light data-dir tools start fast; torch is imported by the commands that need it.
"""
from __future__ import annotations

import errno
import importlib
import logging
import os
import signal
import sys

import click

from spkid.errors import SpkidError

# command name -> module in spkid.bin defining `main` (a click.Command)
COMMANDS: dict[str, str] = {
    "compute-fbank": "compute_fbank",
    "compute-vad": "compute_vad",
    "select-voiced-frames": "select_voiced_frames",
    "compute-eer": "compute_eer",
    "validate-data-dir": "validate_data_dir",
    "fix-data-dir": "fix_data_dir",
    "get-utt2dur": "get_utt2dur",
    "copy-feats": "copy_feats",
    "import-resemblyzer": "import_resemblyzer",
    "import-pretrained": "import_pretrained",
    "extract-embeddings": "extract_embeddings",
    "train": "train",
    "train-ge2e": "train_ge2e",
    "train-deepspeaker": "train_deepspeaker",
    "average-checkpoints": "average_checkpoints",
    "eval-triplets": "eval_triplets",
    "mean-embeddings": "mean_embeddings",
    "score": "score",
    "train-plda": "train_plda",
    "calibrate": "calibrate",
    "plot-embeddings": "plot_embeddings",
    "prepare": "prepare",
    "convert-trials": "convert_trials",
    "data2cuts": "data2cuts",
    "make-shards": "make_shards",
    "verify": "verify",
    "wav-reverberate": "wav_reverberate",
    "enroll": "enroll",
    "identify": "identify",
    "export": "export",
}


class LazyGroup(click.Group):
    """A click group importing each command's module on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMANDS.get(cmd_name)
        if module is None:
            return None
        return importlib.import_module(f"spkid.bin.{module}").main

    def invoke(self, ctx: click.Context):
        try:
            result = super().invoke(ctx)
            if sys.stdout is not None:
                sys.stdout.flush()  # a full or closed output is an error here, not at exit
            return result
        except SpkidError as err:
            _settle_stdout()
            raise click.ClickException(str(err)) from None
        except BrokenPipeError:  # `spkid ... | head`: the reader went away, as Kaldi tools end
            _silence_stdout()
            raise SystemExit(1) from None
        except OSError as err:  # an output problem not caught earlier (e.g. a full disk): one line
            _silence_stdout()
            if err.filename:
                message = f"{err.filename}: {err.strerror or err}"
            elif err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
                message = f"cannot write the output ({err.strerror})"
            else:
                message = err.strerror or str(err)
            raise click.ClickException(message) from None


def _settle_stdout() -> None:
    """Flush what is buffered for stdout now; if that fails (full, closed), drop it silently."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError):
        _silence_stdout()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that Python's flush at exit does not fail a second time."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):
        pass


def _terminate(signum, frame) -> None:
    """SIGTERM (kill, timeout, a scheduler) cleans up like Ctrl-C: temporaries removed, exit 143.

    DataLoader workers (forked children) just end, as they would without this handler.
    """
    if os.getpid() != _MAIN_PID:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    raise SystemExit(128 + signum)


_MAIN_PID = os.getpid()


def setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 0 else logging.INFO
    logging.basicConfig(stream=sys.stderr, level=level,
                        format="%(levelname)s (%(name)s) %(message)s", force=True)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging (debug).")
@click.version_option(package_name="spkid")
def main(verbose: int) -> None:
    """spkid: Kaldi-format compatible speaker embeddings.

    Each command reads and writes Kaldi data dirs and r/wspecifiers (scp:, ark:-, ark,scp:a.ark,a.scp),
    so it composes with Kaldi tools and shell pipes. Run `spkid COMMAND --help` for usage and an example.
    """
    setup_logging(verbose)
    from spkid.augment.inline import register

    register()  # wav.scp pipes of wav-reverberate stages run in-process
    global _MAIN_PID
    _MAIN_PID = os.getpid()
    signal.signal(signal.SIGTERM, _terminate)
