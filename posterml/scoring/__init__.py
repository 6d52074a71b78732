"""Scoring folders of posters outside the scoring server, with the served model's code.

* :mod:`~posterml.scoring.local`: in-process batches into a csv (``posterml predict``);
* :mod:`~posterml.scoring.spark`, :mod:`~posterml.scoring.spark_io`: the same model as a
  Spark UDF over files or tables (``posterml batch-score``);
* :mod:`~posterml.scoring.years`: the dealer's release years, as the server takes them.
"""
