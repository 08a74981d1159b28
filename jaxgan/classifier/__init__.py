"""The digit classifier that judges GAN samples (steps, train, restore)."""
