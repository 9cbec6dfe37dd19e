"""Fakes for what cannot run on these machines, one module each, labelled as fakes.

Everything else in the suite is real and meets on loopback. ``ollama`` stands in for the
Ollama binary: a small HTTP server that follows Ollama's documented REST API.
"""
