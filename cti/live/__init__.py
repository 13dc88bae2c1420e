"""Live state: the single owner of what is happening now (calls, agents, queues) and the bus
that tells everyone else."""
