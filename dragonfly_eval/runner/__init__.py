"""lmms-eval as a program: `dragonfly-eval run` and `demo`, task checks, run files and the failure
report. Nothing here imports torch; the model runs in the lmms-eval child process."""
