import os

import pytest

# Under pytest-xdist each worker gets one core's worth of threads, so two workers do not fight over
# the two cores of a CI machine.
if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    import torch
    torch.set_num_threads(1)
os.environ.setdefault('MPLBACKEND', 'Agg')
