"""Audio: file I/O, the STFT and mel front end, mel inversion, subbands,
synthetic signals and the GSR degradations."""
