"""`vat.data.sampling.EpochShuffleSampler`: one seeded permutation per epoch, sharded across ranks,
resumable in the middle of an epoch."""


def test_sampler_shards_one_permutation_across_ranks(monkeypatch):
    """Rank r takes perm[r::world]: each step's micro-batches on all ranks hold exactly the
    examples one process would see in that step (here 17 examples, 2 ranks, 1 example each)."""
    from vat.data.sampling import EpochShuffleSampler

    one = EpochShuffleSampler(17, seed=3)
    one.set_epoch(2)
    order = list(one)
    shards = []
    for rank in (0, 1):
        monkeypatch.setattr(EpochShuffleSampler, "_shard", staticmethod(lambda r=rank: (r, 2)))
        s = EpochShuffleSampler(17, seed=3)
        s.set_epoch(2)
        shards.append(list(s))
        assert len(s) == 9
    assert [x for pair in zip(*shards, strict=True) for x in pair] == [*order, order[0]]


def test_sampler_resumes_in_the_middle_of_an_epoch():
    """What a mid-epoch checkpoint stores: the epoch and the examples training has taken."""
    from vat.data.sampling import EpochShuffleSampler

    full = EpochShuffleSampler(10, seed=3)
    full.set_epoch(2)
    order = list(full)
    s = EpochShuffleSampler(10, seed=3)
    s.set_epoch(2)
    it = iter(s)
    for _ in range(4):
        next(it)
    s.consumed = 4  # what PolicyModule counts at each batch start
    resumed = EpochShuffleSampler(10, seed=3)
    resumed.load_state_dict(s.state_dict())
    resumed.set_epoch(2)  # Lightning sets the (same) epoch again: the position stays
    assert list(resumed) == order[4:]
    resumed.set_epoch(3)  # the next epoch starts from its beginning
    nxt = EpochShuffleSampler(10, seed=3)
    nxt.set_epoch(3)
    assert list(resumed) == list(nxt)
