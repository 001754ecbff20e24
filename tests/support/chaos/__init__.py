"""The chaos rig (`make chaos`): private services, load, the rig and its invariants."""
