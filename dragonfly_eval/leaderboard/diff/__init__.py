"""`dragonfly-eval diff`: the documents that changed between two runs, and their views."""
