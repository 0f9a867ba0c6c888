from hypothesis import given
from hypothesis import strategies as st

from dragonfly_eval.engine.batching import plan_batches, restore_order


@given(
    groups=st.lists(st.integers(0, 3), max_size=40),
    lengths=st.data(),
    batch_size=st.integers(1, 6),
)
def test_plan_batches_groups_sorts_and_round_trips(groups, lengths, batch_size):
    n = len(groups)
    length = lengths.draw(st.lists(st.integers(0, 50), min_size=n, max_size=n))
    batches = plan_batches(n, lambda i: groups[i], lambda i: (-length[i], i), batch_size)

    assert sorted(i for b in batches for i in b) == list(range(n))
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        assert len({groups[i] for i in batch}) == 1
        assert [length[i] for i in batch] == sorted((length[i] for i in batch), reverse=True)
    # Dense: within a group only its last batch may be short.
    for key in set(groups):
        sizes = [len(b) for b in batches if groups[b[0]] == key]
        assert all(size == batch_size for size in sizes[:-1])

    results = [[f"answer-{i}" for i in batch] for batch in batches]
    assert restore_order(batches, results) == [f"answer-{i}" for i in range(n)]


def test_plan_batches_keeps_first_appearance_order_of_groups():
    groups = ["b", "a", "b", "a", "c"]
    batches = plan_batches(5, lambda i: groups[i], lambda i: (i,), batch_size=8)
    assert batches == [[0, 2], [1, 3], [4]]
