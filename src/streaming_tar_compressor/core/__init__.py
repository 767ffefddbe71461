"""Sans-IO stages: each turns bytes or records into bytes or records, nothing else."""
