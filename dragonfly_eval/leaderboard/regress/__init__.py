"""`dragonfly-eval regress`: verdict types and rules, document pairing, the test that fits a metric, rendering, and the gate that ties them."""
