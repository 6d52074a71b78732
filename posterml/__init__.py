"""posterml: MLflow-tracked experiments that classify movie posters into TMDb genres."""

import os

# TensorFlow's C++ start-up chatter buries progress bars; users can still raise it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
