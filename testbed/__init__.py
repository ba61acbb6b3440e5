"""What the tests and the benchmarks share, and the wheel leaves out: loopback servers that speak the model
protocols (`testbed.servers`), model doubles that behave like flawed small models or a hostile proposer
(`testbed.doubles`), vault harnesses for the cycle, the daemon and the safety checks, and the corpora of bad
heartbeat lines and bad vault.yml files (`testbed.bad_logs`, `testbed.bad_configs`)."""
