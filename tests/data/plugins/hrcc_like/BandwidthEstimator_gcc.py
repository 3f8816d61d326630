# The GCC heuristic alone, as a plugin (HRCC ships the same split:
# BandwidthEstimator.py for the learned one, BandwidthEstimator_gcc.py).
from gcc_heuristic import GccHeuristic


class Estimator(GccHeuristic):
    pass
