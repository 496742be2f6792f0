"""Feature extractors (`extractors`, `inception`, `clip_fast`) and the embedding cache (`cache`)."""
