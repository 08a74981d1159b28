"""Train states, pure steps, scanned epoch loops and sweeps."""
