"""`make bench`: the county and province benchmarks of the real `fangpin run` (see bench/run.py)."""
