import pytest
from aiida.common.links import LinkType
from aiida.orm import Dict, List

from aiida_trainspot.calculations.functions.dataset import merge_datasets, relabel_dataset, subset_dataset
from aiida_trainspot.data import PESData

pytestmark = pytest.mark.aiida


def indices_of(node):
    return [frame.info['index'] for frame in node.iter_frames()]


@pytest.fixture
def dataset(labelled_frames):
    return PESData.from_frames(labelled_frames).store()


def test_merge_keeps_sorted_keyword_order_and_provenance(labelled_frames):
    first = PESData.from_frames(labelled_frames[:5]).store()
    second = PESData.from_frames(labelled_frames[5:]).store()
    merged = merge_datasets(b_second=second, a_first=first)
    assert indices_of(merged) == list(range(12))
    creator = merged.base.links.get_incoming(link_type=LinkType.CREATE).one().node
    inputs = {
        link.link_label: link.node.uuid for link in creator.base.links.get_incoming(link_type=LinkType.INPUT_CALC)
    }
    assert inputs == {'a_first': first.uuid, 'b_second': second.uuid}


def test_subset_by_indices_and_query(dataset):
    assert indices_of(subset_dataset(dataset, indices=List([9, 2, 4]))) == [2, 4, 9]
    assert indices_of(subset_dataset(dataset, query=Dict({'split': 'train', 'iteration_min': 1}))) == [4, 8]
    assert indices_of(subset_dataset(dataset, indices=List([0, 1, 4]), query=Dict({'split': 'train'}))) == [0, 4]


@pytest.mark.parametrize(
    ('indices', 'query', 'message'),
    [([1, 1], None, 'unique'), ([12], None, 'within'), (None, {'colour': 'red'}, 'unknown query key')],
)
def test_subset_rejects_bad_selection(dataset, indices, query, message):
    kwargs = {'indices': List(indices)} if indices is not None else {}
    kwargs.update({'query': Dict(query)} if query is not None else {})
    with pytest.raises(ValueError, match=message):
        subset_dataset(dataset, **kwargs)


def test_relabel_puts_labels_and_failures_on_the_right_frames(labelled_frames, dataset):
    labels = [labelled_frames[3], labelled_frames[7]]
    for frame in labels:
        frame.info = {}
    labels[0].energy = 123.0
    labels[1].energy = labels[1].forces = labels[1].stress = None
    labels[1].failure_reason = 'SCF failed'
    result = relabel_dataset(dataset, PESData.from_frames(labels), List([3, 7]))
    frames = list(result.iter_frames())
    assert frames[3].energy == 123.0 and frames[3].info == {'index': 3}
    assert not frames[7].labelled and frames[7].failure_reason == 'SCF failed'
    assert frames[2].energy == labelled_frames[2].energy
    assert result.base.attributes.get('num_failed') == 1


def test_relabel_refuses_labels_of_other_atoms(labelled_frames, dataset):
    moved = labelled_frames[3]
    moved.positions = moved.positions + 0.01
    with pytest.raises(ValueError, match='frame 3: the label frame 0 has other atoms'):
        relabel_dataset(dataset, PESData.from_frames([moved]), List([3]))
    with pytest.raises(ValueError, match='strictly increasing'):
        relabel_dataset(dataset, PESData.from_frames(labelled_frames[:2]), List([5, 3]))


def test_split_dataset_tags_labelled_frames_and_keeps_tags(labelled_frames):
    from aiida.orm import Dict, Int

    from aiida_trainspot.calculations.functions.dataset import split_dataset

    for frame in labelled_frames:
        frame.split = ''
    labelled_frames[0].split = 'test'
    labelled_frames[1].energy = None  # unlabelled: stays untagged
    labelled_frames[2].origin = 'input'
    dataset = PESData.from_frames(labelled_frames).store()
    tagged = split_dataset(dataset, Int(5))
    splits = [frame.split for frame in tagged.iter_frames()]
    assert splits[0] == 'test' and splits[1] == '' and splits[2] == 'train'
    assert tagged.base.attributes.get('split_counts')['unassigned'] == 1
    assert 'valid' in splits[3:], 'the shared frames include a validation frame'
    assert [frame.split for frame in split_dataset(dataset, Int(5)).iter_frames()] == splits, 'seeded'
    with pytest.raises(ValueError, match='`fractions`: split fractions must lie in'):
        split_dataset(dataset, Int(5), Dict({'train': 0.5, 'valid': 0.1, 'test': 0.1}))
