"""Training data: utterance sources (feats.scp or audio via lhotse cuts), samplers, loaders."""
