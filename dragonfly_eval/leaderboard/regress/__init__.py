"""`dragonfly-eval regress`: verdict, pairing, the test that fits a metric, rendering, the gate."""
