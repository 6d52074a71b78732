"""posterml.studies: exploratory analyses of the poster data, each logged as an MLflow run."""
