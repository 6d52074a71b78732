"""MLproject entry point ``fetch_tmdb``: TMDb posters + genres into a folder dataset.

All logic lives in :mod:`posterml.commands.fetch_tmdb`, whose flags ``posterml fetch-tmdb``
shares. Pass the key through ``TMDB_API_KEY``, never as an MLproject parameter: MLflow logs
MLproject parameters, so a key given that way would end up in the tracking store.
"""

import sys

from posterml.commands.fetch_tmdb import cli_main

if __name__ == "__main__":
    raise SystemExit(cli_main(sys.argv[1:]))
