"""MLproject entry point ``fetch_tmdb``: TMDb posters + genres into a folder dataset.

All logic lives in :mod:`posterml.commands.fetch_tmdb`, whose flags ``posterml fetch-tmdb``
shares, so both behave the same. Pass the key through ``TMDB_API_KEY``, not as an MLproject
parameter: MLflow logs MLproject parameters, so a key given that way would end up in the
tracking store.
"""

from posterml.cli_args import resolve_argv
from posterml.commands.fetch_tmdb import cli_main

if __name__ == "__main__":
    raise SystemExit(cli_main(resolve_argv()))
