"""lmms-eval as a program: `dragonfly-eval run`, `demo` and `ablate`, each through `start` (guard,
check, then run), run files and the failure report. Nothing here imports torch; the model runs in
the lmms-eval child process."""
