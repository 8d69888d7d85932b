"""Models: the registry, the download store and GGUF reading."""
