"""Maintainers: ship a trained checkpoint as the package's bundled default (fp16 safetensors).

    python scripts/bundle_checkpoint.py /path/to/trained_checkpoint
"""

import sys

from t2i_audit.generator.training.train_all_stages import bundle

if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(f"bundled into {bundle(sys.argv[1])}")
