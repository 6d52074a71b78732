"""MLproject entry point ``fetch_tmdb``: TMDb posters + genres into a folder dataset.

All logic lives in :func:`posterml.data.tmdb.cli_main` so ``posterml fetch-tmdb`` and this
script behave the same. Pass the key through ``TMDB_API_KEY``, not as an MLproject parameter:
MLflow logs MLproject parameters, so a key given that way would end up in the tracking store.
"""

from posterml.data.tmdb import cli_main

if __name__ == "__main__":
    raise SystemExit(cli_main())
