"""Kaldi formats: data-dir tables, audio from wav.scp (+ segments), r/wspecifiers over kaldiio."""
