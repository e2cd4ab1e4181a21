"""`python -m spkid ...` (and `torchrun -m spkid ...`) runs the `spkid` command line."""
from spkid.cli import main

if __name__ == "__main__":
    main()
