"""Where results live and chunks train: the crash-safe store and the executors (this process,
worker processes, Ray)."""
