"""Built-in measurement flows: UDP echo RTT and TCP bulk link probes."""
