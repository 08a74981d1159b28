"""The shared machinery under every experiment: the run loop, checkpoints, files, signals, devices."""
