"""Build a folder dataset of movie posters and genres from TMDb.

* :mod:`~posterml.data.tmdb.auth`: how the credential travels and is kept out of text;
* :mod:`~posterml.data.tmdb.client`: an HTTP session to TMDb with retries (urllib3 ``Retry``);
* :mod:`~posterml.data.tmdb.discover`: which movies (Discover per decade, genres, IMDb ids);
* :mod:`~posterml.data.tmdb.fetch`: posters + ``labels.csv``, atomic and resumable;

Entry points: :func:`posterml.data.tmdb.fetch.fetch_tmdb` (library) and
:mod:`posterml.commands.fetch_tmdb` (CLI). This file imports nothing, so
importing one module never drags in the others.
"""
