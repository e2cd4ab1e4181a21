"""The options every `spkid train-*` command shares (the seed's interface)."""
from __future__ import annotations

import sys

import click


class TrainCommand(click.Command):
    """Accepts PaddleSpeech's `--opts k1 v1 k2 v2 ...` (pairs up to the next --option)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        out: list[str] = []
        i = 0
        while i < len(args):
            if args[i] != "--opts":
                out.append(args[i])
                i += 1
                continue
            j = i + 1
            while j < len(args) and not args[j].startswith("--"):
                j += 1
            values = args[i + 1:j]
            if len(values) % 2 or not values:
                raise click.UsageError(f"--opts takes KEY VALUE pairs, got: {' '.join(values) or 'nothing'}")
            for k, v in zip(values[::2], values[1::2]):
                out += ["--opts", k, v]
            i = j
        return super().parse_args(ctx, out)


def train_options(f):
    options = [
        click.option("--data", "data_dir", required=True, metavar="DIR", help="Training data dir."),
        click.option("--output", required=True, metavar="EXPDIR", help="Exp dir: checkpoints, logs, config."),
        click.option("--config", "config_file", default=None, metavar="YAML", help="Config file (YAML)."),
        click.option("--opts", default=None, multiple=True, nargs=2, metavar="KEY VALUE",
                     help="Override config keys, e.g. --opts train.max_steps 500 (repeatable)."),
        click.option("--checkpoint", default=None, metavar="PATH", help="Resume from this checkpoint."),
        click.option("--init", default=None, metavar="PATH",
                     help="Initialise weights from a checkpoint (fine-tuning; optimizer starts fresh)."),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda."),
        click.option("--nprocs", type=int, default=1, show_default=True,
                     help="Data-parallel processes on this machine (relaunches through torchrun)."),
        click.option("--valid-data", default=None, metavar="DIR", help="Validation data dir."),
        click.option("--valid-trials", default=None, metavar="TRIALS",
                     help="Validation trials `<enroll-utt> <test-utt> target|nontarget`: EER every "
                          "train.valid_every steps."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def run_from_cli(build_task, defaults: dict, kwargs: dict, require_trials: bool = True, **task_kwargs) -> None:
    """Run `build_task` through run_training; `require_trials=False` lets --valid-data come alone
    (a task validating something other than trials, e.g. classification accuracy)."""
    from spkid.train.run import run_training

    opts = tuple(x for pair in (kwargs.pop("opts") or ()) for x in pair)
    if require_trials and (kwargs["valid_data"] is None) != (kwargs["valid_trials"] is None):
        raise click.UsageError("--valid-data and --valid-trials go together")
    if kwargs["valid_trials"] is not None and kwargs["valid_data"] is None:
        raise click.UsageError("--valid-trials needs --valid-data")
    argv = sys.argv[1:]  # the same for `spkid ...` and `python -m spkid ...`
    result = run_training(build_task, defaults, data_dir=kwargs["data_dir"], output=kwargs["output"],
                          config_file=kwargs["config_file"], opts=opts, checkpoint=kwargs["checkpoint"],
                          init=kwargs["init"], device=kwargs["device"], nprocs=kwargs["nprocs"], argv=argv,
                          valid_data=kwargs["valid_data"], valid_trials=kwargs["valid_trials"], **task_kwargs)
    if result:
        click.echo(" ".join(f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float)), err=True)
