"""Inception-v3 (pool3, 2048-d) for classic FID, from a local weights file, never downloaded.

The network is torch-fidelity's ``FeatureExtractorInceptionV3`` (the TF-FID graph ported to
PyTorch; optional extra ``fid``). torch-fidelity itself unpickles its weights file; here the file
is read safely (safetensors, or ``torch.load(weights_only=True)``) and handed to the network, so
nothing is unpickled. torch-fidelity's weights file (a plain state dict) loads as it is.

Preprocessing (clean-fid, Parmar et al. 2022): PIL antialiased bicubic resize to 299×299,
rounded to uint8, then the network's own (identity at 299) resize and (x − 128)/128 scaling.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import torch

from t2i_audit.errors import InputError
from t2i_audit.evals.features.common import _need_file, images_to_uint8, weights_hash

INPUT_SIZE = 299
_SKIP = object()


def _fidelity():
    try:
        import torch_fidelity.feature_extractor_inceptionv3 as tfi
    except ImportError as e:
        raise InputError("inception features need torch-fidelity: pip install 't2i-audit[fid]' "
                         "(or pip install torch-fidelity)") from e
    return tfi


def build_inception(state_dict: dict | None = None, feature: str = "2048") -> torch.nn.Module:
    """The Inception-v3 network with ``state_dict`` loaded (strictly), or with its random
    initialisation if ``state_dict`` is None (for tests and for writing weights files)."""
    tfi = _fidelity()

    class _Inception(tfi.FeatureExtractorInceptionV3):
        def load_state_dict(self, sd, strict=True, assign=False):
            if sd is _SKIP:
                return None
            return super().load_state_dict(sd, strict=strict, assign=assign)

    # torch-fidelity's constructor fetches weights by URL when given no path; hand it ours instead.
    with mock.patch.object(tfi, "load_state_dict_from_url", lambda *a, **k: _SKIP):
        net = _Inception("inception-v3-compat", [feature])
    if state_dict is not None:
        try:
            torch.nn.Module.load_state_dict(net, state_dict, strict=True)
        except RuntimeError as e:
            raise InputError(f"inception weights do not fit torch-fidelity's Inception-v3 ({str(e)[:200]})") from e
    return net.eval().requires_grad_(False)


def read_state_dict(path: str | Path) -> dict:
    p = Path(path)
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(p))
    try:
        sd = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is a user error here
        raise InputError(f"inception weights {path}: not a safetensors file or a plain state dict ({str(e)[:160]})") from e
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    if not isinstance(sd, dict):
        raise InputError(f"inception weights {path}: expected a state dict")
    return sd


class InceptionExtractor:
    kind = "image"

    def __init__(self, net: torch.nn.Module, id: str, methodology: str, batch_size: int = 32):
        self.net = net
        self.id = id
        self.methodology = methodology
        self.batch_size = batch_size

    def embed_images(self, images: list) -> torch.Tensor:
        outs = []
        with torch.inference_mode():
            for s in range(0, len(images), self.batch_size):
                x = torch.from_numpy(images_to_uint8(images[s:s + self.batch_size], INPUT_SIZE)).permute(0, 3, 1, 2)
                out = self.net(x.contiguous())
                out = out[0] if isinstance(out, tuple | list) else out
                outs.append(out.reshape(out.shape[0], -1).float())
        return torch.cat(outs) if outs else torch.zeros(0, 2048)


def load_inception(path: str, batch_size: int = 32) -> InceptionExtractor:
    p = _need_file(path, "inception weights", "give torch-fidelity's Inception-v3 weights file (.pth) or a "
                   ".safetensors copy of it")
    net = build_inception(read_state_dict(p))
    h = weights_hash(p)
    meth = (f"Inception-v3 pool3 (2048-d, torch-fidelity graph), weights sha256 {h}; preprocessing: PIL "
            f"bicubic antialiased resize to {INPUT_SIZE}x{INPUT_SIZE}, rounded to uint8 (clean-fid)")
    return InceptionExtractor(net, f"inception-v3:{h}:pil-bicubic-{INPUT_SIZE}", meth, batch_size)
