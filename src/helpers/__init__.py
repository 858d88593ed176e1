"""Helpers for the book *What does a model trained only on wrong labels look at?*

Importing the package quietens TensorFlow's C++ start-up logging, so that notebook
outputs (and nbval) only ever see what the book prints on purpose.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_HOME", os.path.join(os.path.expanduser("~"), ".keras"))

__version__ = "0.1.0"
