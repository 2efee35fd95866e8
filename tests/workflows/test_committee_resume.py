"""Training chunks of a committee: a MACE member goes on from its own checkpoint (`resume_from`) or starts afresh.

Real ``mace_run_train`` runs of a tiny model: chunk 1 trains two members for 2 epochs; chunk 2 trains them on more
frames for 2 epochs more, member 0 from its checkpoint (optimizer, schedule, epoch count), member 1 from its model
only (a fresh optimizer, counting from epoch 0).
"""

from pathlib import Path

import pytest
import torch
from aiida import orm
from aiida.engine import run_get_node

from aiida_trainspot.data import PESData
from aiida_trainspot.workflows.committee import CommitteeTrainingWorkChain
from tests.training.conftest import TINY_MACE, copper_frames

pytestmark = [pytest.mark.aiida, pytest.mark.real]

SEED = 21
CHUNK = {**TINY_MACE, 'max_num_epochs': 2}
BATCH_SIZE = 5
"""The default ``batch_size`` of :class:`~aiida_trainspot.training.mace.MaceHyperparameters`."""


def checkpoint(remote: orm.RemoteData, member: int) -> tuple[int, dict]:
    """Return the epoch index and the contents of the one checkpoint MACE kept in ``remote``."""
    (path,) = (Path(remote.get_remote_path()) / 'checkpoints').glob(f'mace_run-{SEED + member}_epoch-*.pt')
    return int(path.stem.rsplit('-', 1)[1]), torch.load(path, weights_only=False)


def adam_steps(contents: dict) -> int:
    """Return the optimizer steps a checkpoint has taken (Adam's ``step`` of its first parameter)."""
    return int(contents['optimizer']['state'][0]['step'])


def log_before_training(remote: orm.RemoteData) -> str:
    """Return what MACE logged before its first training epoch."""
    text = remote.creator.outputs.retrieved.base.repository.get_object_content('mace.out')
    return text.split('===========TRAINING===========')[0]


def committee_inputs(code, frames) -> dict:
    """Return the inputs of a committee of two tiny MACE members trained for one chunk on ``frames``."""
    mace = {'train': {'code': code, 'hyperparameters': orm.Dict(CHUNK)}}
    dataset = PESData.from_frames(frames).store()
    return {'dataset': dataset, 'num_members': orm.Int(2), 'seed': orm.Int(SEED), 'mace': mace}


def test_a_resumed_member_goes_on_from_its_checkpoint_a_restarted_one_afresh(mace_train_code):
    frames = copper_frames(seed=7, sizes={'train': 10, 'valid': 3, 'test': 2})
    first, node = run_get_node(CommitteeTrainingWorkChain, **committee_inputs(mace_train_code, frames))
    assert node.is_finished_ok, node.exit_message
    folder = first['remote_folders']['member_0']
    inputs = committee_inputs(mace_train_code, frames + copper_frames(seed=8, sizes={'train': 6, 'valid': 1}))
    with pytest.raises(ValueError, match='MACE names its checkpoints after the seed'):
        run_get_node(CommitteeTrainingWorkChain, resume_from={'member_1': folder}, **inputs)
    with pytest.raises(ValueError, match=r"\['member_0'\] are in `restart_from` and `resume_from`"):
        run_get_node(
            CommitteeTrainingWorkChain, resume_from={'member_0': folder}, restart_from=first['models'], **inputs
        )
    second, node = run_get_node(
        CommitteeTrainingWorkChain,
        resume_from={'member_0': folder},
        restart_from={'member_1': first['models']['member_1']},
        **inputs,
    )
    assert node.is_finished_ok, node.exit_message

    saved = first['errors']['member_0']['best_epoch']  # MACE keeps the checkpoint of the saved epoch only
    index, before = checkpoint(folder, 0)
    assert index == saved - 1, 'MACE names a checkpoint after the index (from 0) of its epoch'
    resumed = second['remote_folders']['member_0']
    assert resumed.creator.inputs.hyperparameters['max_num_epochs'] == index + CHUNK['max_num_epochs']
    assert resumed.creator.inputs.restart_from.uuid == first['models']['member_0'].uuid, 'architecture and E0s'
    assert f'Loading checkpoint: checkpoints/mace_run-{SEED}_epoch-{index}.pt' in log_before_training(resumed)
    epochs = second['metrics']['member_0'].get_array('epoch').tolist()
    assert epochs[-2:] == [saved, saved + 1], 'the epochs go on from that of the checkpoint, which MACE trains again'

    restarted = second['remote_folders']['member_1']
    assert 'Loading checkpoint' not in log_before_training(restarted)
    assert second['metrics']['member_1'].get_array('epoch').tolist() == [0, 1, 2]
    restarted_index, fresh = checkpoint(restarted, 1)
    steps_per_epoch = 16 // BATCH_SIZE  # MACE drops the last incomplete batch
    assert adam_steps(fresh) == (restarted_index + 1) * steps_per_epoch, 'a fresh optimizer counts from 0'
    assert fresh['lr_scheduler']['last_epoch'] == restarted_index

    # the optimizer went on: chunk 1's steps, then those of chunk 2 up to its saved epoch
    after_index, after = checkpoint(resumed, 0)
    assert adam_steps(before) == saved * (10 // BATCH_SIZE)
    assert adam_steps(after) == adam_steps(before) + (after_index - index + 1) * steps_per_epoch
    # a schedule steps from the second epoch of a run on: started afresh here, it would count `after_index - index`
    assert after['lr_scheduler']['last_epoch'] == after_index, 'the schedule counts on from chunk 1'


def test_resume_from_is_checked_at_submission(mace_train_code, tmp_path):
    inputs = committee_inputs(mace_train_code, copper_frames(seed=9, sizes={'train': 10, 'valid': 3, 'test': 2}))
    unrelated = orm.RemoteData(remote_path=str(tmp_path / 'run'), computer=mace_train_code.computer).store()
    with pytest.raises(ValueError, match=r"`resume_from` names \['member_2'\], but the members are"):
        run_get_node(CommitteeTrainingWorkChain, resume_from={'member_2': unrelated}, **inputs)
    with pytest.raises(ValueError, match='not that of a MACE training that finished with a saved model'):
        run_get_node(CommitteeTrainingWorkChain, resume_from={'member_0': unrelated}, **inputs)
    elsewhere = orm.Computer(
        label='elsewhere', hostname='localhost', transport_type='core.local', scheduler_type='core.direct'
    )
    elsewhere.set_workdir(str(tmp_path / 'elsewhere'))
    remote = orm.RemoteData(remote_path=str(tmp_path / 'elsewhere' / 'run'), computer=elsewhere.store()).store()
    with pytest.raises(ValueError, match=r'`resume_from\.member_0`: `parent_folder` is on computer elsewhere'):
        run_get_node(CommitteeTrainingWorkChain, resume_from={'member_0': remote}, **inputs)
