"""Entry point `main`: the recipe we ship (``posterml.runner.RECOMMENDED``) on your posters.

mlflow run . -P data=FOLDER --env-manager local
"""

from posterml.runner import RECOMMENDED, main

if __name__ == "__main__":
    raise SystemExit(main(RECOMMENDED["family"], defaults=RECOMMENDED))
