"""Raw CMD-format data (download or synthesis), HDF5 shards and PyTorch datasets."""
