"""Scoring folders of posters outside the scoring server, with the served model's code.

* :mod:`~posterml.batch.local`: in-process batches into a csv (``posterml predict``);
* :mod:`~posterml.batch.spark`, :mod:`~posterml.batch.spark_io`: the same model as a
  Spark UDF over files or tables (``posterml batch-score``);
* :mod:`~posterml.batch.years`: the dealer's release years, as the server takes them.
"""
