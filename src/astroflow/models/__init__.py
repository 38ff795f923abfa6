"""Network architectures only: nn.Modules, no files, no data."""
