"""Training: the loop, data parallelism, checkpoints, summaries, the optimiser,
export, and the analysis and vocoder steps and trainings."""
