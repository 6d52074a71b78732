"""Names shared across posterml: run tags, the registered model, the headline metrics.

One place, so the runner, ``register``, ``posterml where``/``predict`` and the tests agree.
"""

from __future__ import annotations

MODEL_NAME = "poster-genre-classifier"  # the registered model
CHAMPION_ALIAS = "champion"
CHAMPION_URI = f"models:/{MODEL_NAME}@{CHAMPION_ALIAS}"

ROLE_TAG = "posterml.role"  # what a run is, one of the roles below
EXPERIMENT_ROLE = "experiment"  # a family's parent run: the one `register` ranks
TRIAL_ROLE = "trial"  # an Optuna trial, nested under its experiment run
COMPARE_ROLE = "compare"
COLORS_ROLE = "colors"
REGISTER_ROLE = "register"
FAMILY_TAG = "family"
BACKBONE_TAG = "backbone"
BALANCED_TAG = "balanced"  # "true"/"false": the classifier reweights rare genres
MODEL_ID_TAG = "model_id"  # the run's logged model (MLflow 3 LoggedModel id)
MODEL_URI_TAG = "model_uri"
DATASET_TAG = "dataset"
DATASET_HASH_TAG = "dataset_hash"
BEATS_BASELINE_TAG = "beats_baseline"  # "true"/"false": the run's loud baseline check
PREVIOUS_ALIAS = "previous"  # the champion before the current one (`posterml rollback`)
CHALLENGER_ALIAS = "challenger"  # the latest version the reference check refused
PREVIOUS_CHAMPION_TAG = "previous_champion"  # on a version: the champion it replaced
REFERENCE_PREFIX = "reference"  # metrics of a version scored on the reference set
# Columns of the csv files a dealer edits (predict, audit): a row is his label once
# "reviewed" says yes; "review_priority" orders what to look at first.
REVIEWED_COLUMN = "reviewed"
TEXT_COLUMN = "text"  # what OCR read on a poster, for a model that reads the words
PRIORITY_COLUMN = "review_priority"

# The decision layer as JSON: inside a saved model, and beside it in its run.
DECISION_RULE_FILE = "decision_rule.json"
# Every experiment run's posters: poster_id, split, image_sha256.
SPLIT_IDS_ARTIFACT = "data/split_ids.csv"

# The search objective and the metric `register` ranks runs by.
DEFAULT_OBJECTIVE = "val_f1_weighted"
