"""Entry point `scratch_cnn`: A CNN trained from scratch on resized posters.

mlflow run . -e scratch_cnn -P data=synthetic --env-manager local
"""

from posterml.runner import main

if __name__ == "__main__":
    raise SystemExit(main("scratch_cnn"))
