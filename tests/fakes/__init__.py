"""Fakes for what cannot run on these machines, one module each, labelled as fakes.

Everything else in the suite is real and meets on loopback. ``ollama`` stands in for the
Ollama binary: a small HTTP server that follows Ollama's documented REST API. ``openai_server``
stands in for llama.cpp's C++ ``llama-server`` while it loads (503 "Loading model").
"""
