"""School-scale benchmark: build a large deployment, then time the reads that must stay fast."""
