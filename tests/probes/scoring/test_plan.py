"""`vat.probes.scoring.plan`: requests grouped by a shared cached prefix."""

from vat.probes.scoring.plan import groups


def test_prefix_reuse_actually_groups(held_requests):
    reqs = held_requests
    fulls = [list(r.context) + list(r.continuation) for r in reqs]
    plan = groups(reqs, fulls, reuse_prefix=True, min_prefix=8)
    assert len(plan) == 3 and all(k > 20 for k, _ in plan)  # one cached scenario prefix per scene
    plan = groups(reqs, fulls, reuse_prefix=False, min_prefix=8)
    assert [k for k, _ in plan] == [0]
    lengths = [len(reqs[i].context) + len(reqs[i].continuation) for i in plan[0][1]]
    assert lengths == sorted(lengths, reverse=True)  # longest first
