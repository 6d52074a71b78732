"""Research experiments: questions about the model asked on real posters, each answered once.

Each module asks one question (which backbone, which views, which representation, do the
audit's suspects matter, how many vintage posters are needed, ...) and prints its tables;
``docs/results.md`` keeps what each one measured beside the command that prints it. The
performance benchmarks (what a request, a batch or a fit costs) are in ``benchmarks/``, whose
shared plumbing (the real posters' path, the CPU kind, ``--smoke``) these reuse.
"""
