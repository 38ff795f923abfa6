"""The training engine: the loop every model family shares, one job a module.

``loop`` (the loop, :func:`~astroflow.engine.loop.fit`), ``family`` (what a family supplies:
data, networks, optimizers, one step, validation), ``options`` (how a run is executed,
torch-free so the workflow can import it while parsing), ``distributed`` (process group, rank
agreement, the global batch), ``batches`` (the epoch plan: shuffling and augmentation as a pure
function of seed and epoch, resumable mid-epoch; DataLoaders and worker counts),
``checkpoint`` (the training state, atomic saves, resume checks), ``rng`` (seeding, capture
and restore of every generator), ``resume`` (checkpoint cadence, SIGTERM/SIGUSR1 to a
checkpoint at the next step), ``monitor`` (progress, TensorBoard, CSV) and ``launch`` (one
rank per GPU under torchrun). The engine imports no model family and no data package.
"""
