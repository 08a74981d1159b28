"""Part 2: the MLP GAN (steps, train, generate, interpolate)."""
