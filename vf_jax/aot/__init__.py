"""Compiling ahead of time: the compiler (:mod:`vf_jax.aot.compiler`: TPU
topologies from any host, HBM, FLOPs, the compiler's estimate) and every
program users run with its argument shapes (:mod:`vf_jax.aot.programs`),
built from the functions and shape sources that run.

>>> from vf_jax.aot import compiler, programs                     # doctest: +SKIP
>>> mesh = compiler.topology_mesh("v5e:2x2", chips=1)             # doctest: +SKIP
>>> report = programs.restore(0, 1, 30.0).compile(mesh)           # doctest: +SKIP
"""
