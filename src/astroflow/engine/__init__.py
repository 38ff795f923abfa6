"""The training engine: everything around the loop of :mod:`astroflow.train`, one job a module.

``options`` (how a run is executed, torch-free so the workflow can import it while parsing),
``distributed`` (process group, rank agreement, the global batch), ``sampler`` (the epoch
plan: shuffling and augmentation as a pure function of seed and epoch, resumable mid-epoch),
``loader`` (DataLoaders and worker counts), ``checkpoint`` (atomic saves, resume checks),
``rng`` (seeding, capture and restore of every generator), ``signals`` (SIGTERM/SIGUSR1 to a
checkpoint at the next step), ``monitor`` (progress, TensorBoard, CSV) and ``launch``
(one process, or one per GPU under torchrun).
"""
