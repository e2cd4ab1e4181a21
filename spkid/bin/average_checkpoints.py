"""spkid average-checkpoints: the weights of a run's last checkpoints averaged into one (WeSpeaker's avg_model)."""
from __future__ import annotations

import click


@click.command("average-checkpoints")
@click.option("--exp", "exp_dir", required=True, help="The training exp dir (its checkpoints/step-N.pt are averaged).")
@click.option("--num", type=int, default=None,
              help="Average the newest N checkpoints (of those in the step range).  [default: all in range]")
@click.option("--min-step", type=int, default=None, help="Only checkpoints of this step or later.")
@click.option("--max-step", type=int, default=None, help="Only checkpoints of this step or earlier.")
@click.option("--output", required=True, type=click.Path(dir_okay=False),
              help="The averaged checkpoint (e.g. EXP/avg_model.pt; not inside EXP/checkpoints).")
def main(exp_dir: str, num: int | None, min_step: int | None, max_step: int | None, output: str) -> None:
    """Average the weights of a run's checkpoints into one checkpoint, as WeSpeaker's average_model.py.

    Floating-point tensors (weights, batch-norm running statistics) are averaged; integer buffers
    (num_batches_tracked) come from the newest checkpoint, as do the model, front-end, extraction
    windows and step. The output is a normal spkid checkpoint (no optimizer state): extract-embeddings,
    export and `spkid train --init` accept it.

    \b
    Example (the last 5 checkpoints; keep train.keep_checkpoints >= 5):
      spkid average-checkpoints --exp exp/resnet34_lm --num 5 --output exp/resnet34_lm/avg_model.pt
      spkid extract-embeddings --model exp/resnet34_lm/avg_model.pt --data data/voxceleb1 --use-feats \\
          --output ark,scp:exp/emb/vox1.ark,exp/emb/vox1.scp
    """
    from pathlib import Path

    from spkid.errors import SpkidError
    from spkid.train.average import average_checkpoints, select_checkpoints

    if Path(exp_dir).is_file():  # a checkpoint or an export: say what it is
        from spkid.inference import describe_model

        raise SpkidError(f"{exp_dir} is {describe_model(exp_dir).label}, not an exp dir: average-checkpoints "
                         "averages the checkpoints/step-N.pt of a training run")
    out = Path(output).resolve()
    if out.parent == (Path(exp_dir) / "checkpoints").resolve():
        raise SpkidError(f"{output}: write the average outside {exp_dir}/checkpoints (training would resume from it)")
    average_checkpoints(select_checkpoints(exp_dir, num, min_step, max_step), output)
