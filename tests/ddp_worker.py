"""Run under torchrun by tests/test_bin_train_ge2e.py: trains a few steps and saves this rank's weights."""
import sys

import torch

from spkid.tasks.ge2e import build_task
from spkid.train.config import resolve_config
from spkid.train.distributed import cleanup, init_distributed
from spkid.train.trainer import Trainer

data, exp, *opts = sys.argv[1:]
config = resolve_config(None, tuple(opts), default_task="ge2e")
device = torch.device("cpu")
info = init_distributed(device)
torch.manual_seed(int(config["train"]["seed"]))
task = build_task(config, data, info.rank, info.world_size)
first_batch = task.make_batches(0).batch_sampler.batch(0)
Trainer(task, config, exp, device, info).fit()
torch.save({"state": task.model.state_dict(), "criterion": task.criterion.state_dict(),
            "first_batch": first_batch}, f"{exp}/rank{info.rank}.pt")
cleanup(info)
