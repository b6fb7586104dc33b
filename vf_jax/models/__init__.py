"""The networks: shared layers, the ResUNet, the analysis models, the TFGAN
vocoder and its discriminators, and the registry of kinds."""
