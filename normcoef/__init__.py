"""normcoef: CNN estimates of normalization coefficients for diffusion operators."""

import os

# OpenMP threads that sleep while they wait instead of spinning (README, "CPU threads"): beside
# another busy process, spinning threads hold the cores it needs and training at 2 threads fell
# to 0.33x of its speed alone; sleeping ones keep 0.78x, for 17 % less alone
# (benchmarks/bench_threads.py). libgomp reads this when torch loads, so it is set here, before
# any normcoef module imports torch; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
