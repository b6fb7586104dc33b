"""Training the analysis networks: the step and the training."""
