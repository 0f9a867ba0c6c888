"""Renderers of synthetic data: the offline mini suite and hub-layout copies of real datasets."""
