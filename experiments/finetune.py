"""Entry point `finetune`: the pretrained CNN's top block fine-tuned on posters.

mlflow run . -e finetune -P data=synthetic --env-manager local
"""

from posterml.runner import main

if __name__ == "__main__":
    raise SystemExit(main("finetune"))
