"""Restoring audio: the restorer, weights folders and the checkpoint converter."""
