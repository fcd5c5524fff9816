"""Registry cases, one module per loss family; each module exposes ``CASES``."""
