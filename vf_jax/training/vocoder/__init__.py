"""Training the TFGAN vocoder: losses, the step and the training."""
