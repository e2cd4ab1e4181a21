"""One thin module per `spkid` command: parse options, call the library, report."""
