# How jobs run. run.pl runs them on this machine; on a Slurm cluster use e.g.
#   export train_cmd="slurm.pl --mem 4G"   (see utils/slurm.pl --help)
export train_cmd="run.pl"
