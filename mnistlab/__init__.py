"""mnistlab: train, compare and understand the classic Keras MNIST models.

Importing this package (and its data, store, evaluation, filters and charts modules) does
not import TensorFlow; only building, training or loading a model does.
"""

import os

__version__ = "0.1.0"

# TensorFlow's C++ start-up chatter is not for users; set before any lazy import of it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnistlab.datasets.mnist import Dataset, load_mnist, resolve_source
from mnistlab.datasets.tasks import TASKS
from mnistlab.models.architectures import ARCHITECTURES, count_params, summarize
from mnistlab.runs.config import RunConfig
from mnistlab.runs.store import BrokenRun, Run, RunStore

__all__ = [
    "ARCHITECTURES",
    "TASKS",
    "BrokenRun",
    "Dataset",
    "Run",
    "RunConfig",
    "RunStore",
    "count_params",
    "load_mnist",
    "resolve_source",
    "summarize",
]
