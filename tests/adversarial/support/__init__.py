"""The adversarial package's own helpers: surfaces, wire framings, inputs and the fuzzer."""
