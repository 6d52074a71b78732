"""The experiment entry points of MLproject: ``python -m experiments.run NAME [--knob VALUE]``.

NAME is ``main`` (the recipe we ship), a family (resnet_svm, resnet_mlp, ensemble, finetune,
pca_classic, scratch_cnn) or ``compare``; README.md's Experiments section says what each does.

    mlflow run . -e resnet_svm -P data=synthetic --env-manager local
    python -m experiments.run resnet_svm --data synthetic --n-trials 2
"""

import sys

from posterml.modeling.entry_points import run_entry_point

if __name__ == "__main__":
    raise SystemExit(run_entry_point(sys.argv[1:]))
