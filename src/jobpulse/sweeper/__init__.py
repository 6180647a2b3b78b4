"""The sweeper: what it does to a job (rules, pure) and the loop that sweeps every interval."""
