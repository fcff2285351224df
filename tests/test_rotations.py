"""Quaternions and rotation matrices (a3d/core/rotations.py): the two conversions are inverses, every
branch of Shepperd's method is reached, the matrices are proper rotations in the stated convention, and the
quaternion product composes rotations in the stated order."""
import math

import torch

from a3d.core.rotations import quat_multiply, quat_to_rotmat, rotmat_to_quat


def test_a_quarter_turn_about_z_takes_x_to_y():
    q = torch.tensor([math.cos(math.pi / 4), 0.0, 0.0, math.sin(math.pi / 4)])  # (w, x, y, z)
    R = quat_to_rotmat(q)
    assert torch.allclose(R @ torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), atol=1e-6)
    assert torch.allclose(quat_to_rotmat(3 * q), R, atol=1e-6)  # any norm > 0


def test_matrices_are_proper_rotations(seed):
    R = quat_to_rotmat(torch.randn(1000, 4, generator=torch.Generator().manual_seed(seed)))
    assert torch.allclose(R @ R.transpose(-1, -2), torch.eye(3).expand_as(R), atol=1e-5)
    assert torch.allclose(torch.linalg.det(R), torch.ones(len(R)), atol=1e-5)


def test_matrix_to_quaternion_round_trip(seed):
    q = torch.randn(2000, 4, generator=torch.Generator().manual_seed(seed))
    q[:4] = torch.eye(4)  # the identity and the three half turns: each branch of the conversion
    # half turns (w = 0) about oblique axes, where naive conversions lose signs
    q[4:10] = torch.tensor([[0, 0.6, -0.8, 0], [0, -0.6, 0, 0.8], [0, 0, 0.6, -0.8], [0, 0.6, 0.8, 0],
                            [0, 0.8, 0, -0.6], [0, 0, -0.8, 0.6]])
    R = quat_to_rotmat(q)
    back = rotmat_to_quat(R)
    assert torch.allclose(quat_to_rotmat(back), R, atol=1e-5)
    assert torch.allclose(back.norm(dim=-1), torch.ones(len(q)), atol=1e-6)
    assert (back[:, 0] >= 0).all()
    unit = torch.nn.functional.normalize(q[10:], dim=-1)  # the same rotation up to sign: q or -q
    assert torch.allclose(back[10:], unit * unit[:, :1].sign(), atol=1e-5)


def test_the_product_composes_rotations_q_first(seed):
    gen = torch.Generator().manual_seed(seed)
    p, q = torch.randn(500, 4, generator=gen), torch.randn(500, 4, generator=gen)
    assert torch.allclose(quat_to_rotmat(quat_multiply(p, q)), quat_to_rotmat(p) @ quat_to_rotmat(q), atol=1e-5)
    unit = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert torch.allclose(quat_multiply(unit, q), q) and torch.allclose(quat_multiply(q, unit), q)
    assert quat_multiply(p[:1], q).shape == (500, 4)  # broadcast
