"""posterml.colors: the colour study (entry point ``colors``), which colours posters of each
genre and decade use: palettes (a poster's dominant colours), the study (one MLflow run),
its figures and its command line."""
