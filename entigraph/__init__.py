"""entigraph: synthetic continued pretraining (EntiGraph, Yang et al. 2024) on your own corpus."""

__version__ = "0.1.0"
