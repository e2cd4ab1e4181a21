"""Training: the one loop, distributed setup, checkpoints, configs."""
