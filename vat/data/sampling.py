"""The training order: an epoch shuffle fixed by (seed, epoch), resumable in the middle of an epoch.

Ours, not a library's, because exact resume needs it: `torch.utils.data.DistributedSampler` has no
state to resume from inside an epoch, and a stateful loader (torchdata's `StatefulDataLoader`)
saves what the loader has yielded, which under Lightning runs one prefetched batch ahead of the
training step. The permutation (seeded by ``seed * 1_000_003 + epoch``) also fixes the batches of
every run so far, so it stays as it is.
"""

from __future__ import annotations

import torch

__all__ = ["EpochShuffleSampler", "ResumableDataLoader"]


class EpochShuffleSampler(torch.utils.data.Sampler[int]):
    """Shuffles with a permutation that depends only on (seed, epoch), and shards it across ranks.

    Lightning calls `set_epoch` at the start of every epoch (as for `DistributedSampler`), so a run
    resumed from a checkpoint sees exactly the batches an uninterrupted run would have seen. Under
    several processes (torch.distributed initialised) rank r takes every world-th index of the
    same permutation from r on (wrapping round to equal lengths, as `DistributedSampler` does): the
    ranks' micro-batches of one optimizer step then hold exactly the examples a single process sees
    in that step, so the run does not depend on the number of devices. (Lightning's own sampler
    wrapper would shuffle once more on top: the Trainer gets ``use_distributed_sampler=False``.)
    """

    def __init__(self, n: int, seed: int = 0):
        self.n, self.seed, self.epoch = n, seed, 0
        self.consumed = 0  # this rank's examples of the current epoch that training has taken
        self._skip = 0  # examples to skip at the next iteration (resumed in the middle of an epoch)

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch, self._skip = epoch, 0

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict) -> None:
        """Resume where a checkpoint was saved: the same epoch's permutation, minus what was taken."""
        self.epoch, self._skip = int(state["epoch"]), int(state["consumed"])

    @staticmethod
    def _shard() -> tuple[int, int]:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
        return 0, 1

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        rank, world = self._shard()
        perm += perm[: len(self) * world - self.n]
        skip, self._skip = self._skip, 0
        self.consumed = skip
        return iter(perm[rank::world][skip:])

    def __len__(self) -> int:
        return -(-self.n // self._shard()[1])


class ResumableDataLoader(torch.utils.data.DataLoader):
    """A `DataLoader` whose position inside an epoch is saved in Lightning checkpoints.

    Lightning saves ``state_dict()`` of a loader that has one and restores it before iterating, so
    a run resumed from a checkpoint taken in the middle of an epoch continues with the next batch
    an uninterrupted run would have taken (a plain DataLoader would restart the epoch, and the
    resumed run would differ). The position is the sampler's count of examples the training step
    has taken (`PolicyModule` counts at each batch start), not what the loader has yielded, which
    runs ahead of training by the prefetched batch.
    """

    def __init__(self, dataset, *, sampler: EpochShuffleSampler, **kwargs):
        super().__init__(dataset, sampler=sampler, **kwargs)

    def state_dict(self) -> dict:
        return self.sampler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)
