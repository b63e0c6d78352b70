"""The runtime: runs sagas and the engine against the ports."""
