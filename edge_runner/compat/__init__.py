"""Compatibility layers: model folders written for other systems, served unchanged.

``compat.clarifai`` answers the ``clarifai`` imports of a Clarifai model folder when the
``clarifai`` package is not installed, and adapts classes derived from the real one when it is.
"""
