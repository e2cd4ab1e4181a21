"""The options `spkid train` and its aliases (train-ge2e, train-deepspeaker) share
(PaddleSpeech examples/ge2e's interface, `--opts` included)."""
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
        click.option("--init", default=None, metavar="MODEL",
                     help="Initialise weights from a checkpoint, exp dir (its newest) or pretrained name, e.g. "
                          "campplus-zh-en (fine-tuning; optimizer starts fresh). Its model, front-end and "
                          "extraction settings (GE2E: w, b) apply unless the config sets them."),
        click.option("--fresh", is_flag=True,
                     help="Start over at step 0: delete the checkpoints in --output instead of resuming from "
                          "them (needed to change the model or front-end of an exp dir)."),
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


def run_from_cli(kwargs: dict, default_task: str | None = None, tasks: tuple[str, ...] | None = None,
                 command_defaults: dict[str, dict] | None = None, check=None) -> None:
    """Resolve the config (spkid.train.config.resolve_config), check the options against its task, train.
    `tasks`: the tasks an alias trains; `check(config)`: an alias's own check of the resolved config."""
    from spkid.devices import parse_device
    from spkid.inference import checkpoint_path
    from spkid.tasks import check_names, task_module
    from spkid.train.checkpoint import find_latest_checkpoint
    from spkid.train.config import resolve_config
    from spkid.train.run import run_training

    parse_device(kwargs["device"])  # a bad --device is a one-line error before anything is written
    opts = tuple(x for pair in (kwargs.pop("opts") or ()) for x in pair)
    if kwargs["init"]:  # a pretrained name or exp dir -> its checkpoint file; an export is a one-line error
        kwargs["init"] = str(checkpoint_path(kwargs["init"], "train --init"))
    config = resolve_config(kwargs["config_file"], opts, exp_dir=kwargs["output"], fresh=kwargs["fresh"],
                            default_task=default_task, command_defaults=command_defaults, init=kwargs["init"])
    task = config["task"]
    check_names(config)
    if tasks is not None and task not in tasks:
        raise click.UsageError(f"this command trains the {' or '.join(tasks)} task, not '{task}' (use spkid train)")
    if check is not None:
        check(config)
    if kwargs["valid_trials"] is not None and kwargs["valid_data"] is None:
        raise click.UsageError("--valid-trials needs --valid-data")
    if kwargs["valid_data"] and not kwargs["valid_trials"] and not task_module(task).VALID_DATA_ALONE:
        raise click.UsageError(f"the {task} task validates on --valid-trials (EER); --valid-data alone gives "
                               "accuracy in the classification task")
    resuming = kwargs["checkpoint"] or not kwargs["fresh"] and find_latest_checkpoint(kwargs["output"])
    if task == "classification" and config["classification"]["freeze_encoder"] and not (kwargs["init"] or resuming):
        raise click.UsageError("a frozen encoder (classification.freeze_encoder, --stage freeze) needs trained "
                               "weights: give --init EXP")
    from spkid.train.preflight import check_before_writing

    check_before_writing(config, data_dir=kwargs["data_dir"], checkpoint=kwargs["checkpoint"],
                         valid_data=kwargs["valid_data"], valid_trials=kwargs["valid_trials"],
                         device=kwargs["device"])  # one-line errors before the exp dir is written
    argv = sys.argv[1:]  # the same for `spkid ...` and `python -m spkid ...`
    result = run_training(task_module(task).build_task, config, data_dir=kwargs["data_dir"], output=kwargs["output"],
                          checkpoint=kwargs["checkpoint"], init=kwargs["init"], device=kwargs["device"],
                          nprocs=kwargs["nprocs"], argv=argv, fresh=kwargs["fresh"],
                          valid_data=kwargs["valid_data"], valid_trials=kwargs["valid_trials"])
    if result:
        click.echo(" ".join(f"{k}={v:.4g}" for k, v in result.items() if isinstance(v, float)), err=True)
