"""The session runner: connect ordering, the control loop, safety, results."""
