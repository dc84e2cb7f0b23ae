"""Adam's state as safetensors can hold it: flat tensors plus JSON, so a snapshot needs no pickle."""

from __future__ import annotations

from collections import defaultdict

import torch


def optimizer_to_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """Adam's state as flat tensors plus JSON: safetensors holds tensors only, and no pickle is used."""
    sd = opt.state_dict()
    tensors = {f"{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items() if torch.is_tensor(v)}
    scalars = {
        f"{i}.{k}": v for i, st in sd["state"].items() for k, v in st.items() if not torch.is_tensor(v)
    }
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def optimizer_from_tensors(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Load into `opt` what optimizer_to_tensors made, param_groups (learning rates) included."""
    state: dict[int, dict] = defaultdict(dict)
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        index, name = key.split(".", 1)
        state[int(index)][name] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    opt.load_state_dict({"state": dict(state), "param_groups": groups})
