"""Pictures of neighbourhood-KL learning: the RKDO kaleidoscope, training curves, embeddings.

- :mod:`rkdo.viz.kaleidoscope`: the animated star graph of teacher ``p`` and student ``q``
  fields (from :func:`rkdo.viz.simulate.simulate` or a run's recorded ``fields.npz``).
- :mod:`rkdo.viz.plots`: loss and evaluation curves of runs; 2-D maps of learned features.
- :mod:`rkdo.cli.viz`: the ``rkdo viz`` command.

Matplotlib is imported only inside the functions that draw, so importing this package (or the
command-line parser) stays light.
"""
