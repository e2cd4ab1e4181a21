# How jobs run. run.pl runs them on this machine (the default); on a Slurm cluster use slurm.pl, e.g.
#   export train_cmd="slurm.pl --mem 4G"
#   export cuda_cmd="slurm.pl --mem 16G"   # and ./run.sh --nproc 4: GPUs per training job
# (see utils/slurm.pl for the options it maps to sbatch).
export train_cmd="run.pl"
export cuda_cmd="run.pl"
