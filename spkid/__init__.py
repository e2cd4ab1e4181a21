"""spkid: a Kaldi-format compatible speaker-embedding toolset."""

__version__ = "0.1.0"
