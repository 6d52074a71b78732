"""Build a folder dataset of movie posters and genres from TMDb.

* :mod:`~posterml.data.tmdb.auth`: how the credential travels and is kept out of text;
* :mod:`~posterml.data.tmdb.client`: an HTTP session to TMDb with retries (urllib3 ``Retry``);
* :mod:`~posterml.data.tmdb.discover`: which movies (Discover per decade, genres, IMDb ids);
* :mod:`~posterml.data.tmdb.fetch`: posters + ``labels.csv``, atomic and resumable;
* :mod:`~posterml.data.tmdb.command`: ``posterml fetch-tmdb`` as an MLflow run.
"""

from posterml.data.tmdb.client import TMDbAuthError, TMDbError
from posterml.data.tmdb.fetch import FetchReport, fetch_tmdb

__all__ = ["FetchReport", "TMDbAuthError", "TMDbError", "fetch_tmdb"]
