"""Several processes on one run: the process world (`launch`) and the torchrun fan-out (`fanout`)."""
