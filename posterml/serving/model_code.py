"""Models-from-code entry point: MLflow runs this file to build the pyfunc model.

Logging the model as code (instead of a cloudpickled object) keeps the logged model free of
pickled Python objects and readable as text.
"""

import mlflow

from posterml.serving.pyfunc import PosterGenreModel

mlflow.models.set_model(PosterGenreModel())
