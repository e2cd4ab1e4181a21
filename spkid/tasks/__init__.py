"""Training recipes plugged into the one Trainer: each builds model, loss, batches and validation."""
