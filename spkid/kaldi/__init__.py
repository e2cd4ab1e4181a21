"""Kaldi formats: data-dir tables, audio from wav.scp (+ segments), r/wspecifiers; objects.py reads every table."""
