"""Feature front-ends: Kaldi fbank, energy VAD, the Resemblyzer-compatible mel front-end."""
