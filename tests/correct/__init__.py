"""Tests of kmri_jax.correct (a package so that test module names may repeat tests/sim)."""
