"""Experience replay of past fakes (Shrivastava et al. 2017; CycleGAN's pool of 50).

Showing D old fakes as well as new ones keeps G from cycling between modes D has forgotten.
"""

from __future__ import annotations

import torch


class ImagePool:
    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, fakes: torch.Tensor) -> torch.Tensor:
        """Return a batch of the same size: each image is either the new fake or, with
        probability 1/2 once the pool is full, a stored one that the new fake replaces."""
        if self.size <= 0:
            return fakes
        out = []
        for img in fakes.detach():
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand(()) < 0.5:
                i = int(torch.randint(0, self.size, ()))
                out.append(self.images[i].clone())
                self.images[i] = img.clone()
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"size": self.size, "images": [t.clone() for t in self.images]}

    def load_state_dict(self, state: dict, device: torch.device | str | None = None) -> None:
        """Restore a pool; ``device`` moves its images to where training runs (checkpoints load on the CPU)."""
        self.size = state["size"]
        self.images = [t.to(device).clone() if device is not None else t.clone() for t in state["images"]]
