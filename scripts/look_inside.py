"""Two looks inside a model that its metrics do not give (docs/training.md, "Next generation (issue 25)").

    python scripts/look_inside.py outline [--model DIR] [--heads 16] [--views 16] [--size 128]
    python scripts/look_inside.py grazing [--model DIR] [--low 0.3] PHOTO [PHOTO ...]

``outline``: where the silhouette goes wrong on the synthetic held-out heads (the trainer's eval set, one-step
reconstructions from the same noise as ``a3d eval``). For each view azimuth, the true silhouette's pixels the
render misses and the pixels it adds outside it (alpha > 0.5 on either side), as fractions of the true
silhouette's area; then the same two counts in eighths of the image height, top to bottom.

``grazing``: how much of the photo's own Gaussians (the front set) a ``ModelConfig.given_grazing`` of ``--low``
would fade, per photo: among the front set's visible pixels (opacity > 0.5), the share whose facing weight is
below 1 (faded) and 0 (gone), and the mean weight (``a3d.model.given.facing`` with the ramp ``low`` to
``2 · low``). Run it on a model whose own ``given_grazing`` is 0, so that the opacities are not already faded.
"""
from __future__ import annotations

import argparse

import torch

import a3d
from a3d.core.cameras import Cameras, canonical_cameras
from a3d.eval.evaluate import _reconstruct_views, synthetic_eval_set
from a3d.model.given import facing


def outline(args: argparse.Namespace) -> None:
    model = a3d.load_model(args.model).eval()
    es = synthetic_eval_set(args.heads, args.views, model.config.image_size, "cpu", num_gaussians=60_000,
                            view_size=args.size)  # as `a3d eval --synthetic` makes them
    R = args.size
    cams = Cameras(es["viewmats"], es["Ks"], R, R)
    g0 = model.noise(args.heads, generator=torch.Generator().manual_seed(0))  # as evaluate(seed=0) draws it
    missed = torch.zeros(args.views)
    added = torch.zeros(args.views)
    true_area = torch.zeros(args.views)
    rows_missed = torch.zeros(R)
    rows_added = torch.zeros(R)
    for i in range(0, args.heads, 4):
        _, alpha, _ = _reconstruct_views(model, es["input"][i:i + 4], g0[i:i + 4], cams, 0, i,
                                         es["canonical_alpha"][i:i + 4])  # alpha [h, V, R, R], as a3d eval's
        pred, true = alpha > 0.5, es["views_alpha"][i:i + 4] > 0.5
        miss, extra = (~pred & true).float(), (pred & ~true).float()
        missed += miss.sum((0, 2, 3))
        added += extra.sum((0, 2, 3))
        true_area += true.float().sum((0, 2, 3))
        rows_missed += miss.sum((0, 1, 3))
        rows_added += extra.sum((0, 1, 3))
    print("| azimuth | missed | added |\n|---|---|---|")
    for az, m, a, t in zip(es["azimuths"].tolist(), missed, added, true_area):
        print(f"| {az:.1f} | {m / t:.3f} | {a / t:.3f} |")
    print(f"| all | {missed.sum() / true_area.sum():.3f} | {added.sum() / true_area.sum():.3f} |")
    eighth = lambda x: [round(v / true_area.sum().item(), 4) for v in x.view(8, -1).sum(1).tolist()]  # noqa: E731
    print("eighths of the height, top to bottom, missed:", eighth(rows_missed))
    print("eighths of the height, top to bottom, added: ", eighth(rows_added))


def grazing(args: argparse.Namespace) -> None:
    model = a3d.load_model(args.model)
    if model.config.given_grazing > 0:
        print(f"note: this model fades grazing pixels itself (given_grazing {model.config.given_grazing}); the "
              "opacities read here are already faded")
    S = model.config.image_size
    origin = canonical_cameras(S).centers[0]  # the front canonical camera's centre
    print("| photo | faded | gone | mean weight |\n|---|---|---|---|")
    for photo in args.photos:
        g = a3d.reconstruct(photo, model, seed=0, device="cpu").gaussians
        means = g.means[: S * S].reshape(S, S, 3)  # the front set comes first: [4, S, S] in view order
        visible = g.opacities[: S * S].reshape(S, S) > 0.5
        w = facing(means, origin, args.low, 2 * args.low)[visible]
        print(f"| {photo} | {(w < 1).float().mean():.3f} | {(w == 0).float().mean():.3f} | {w.mean():.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    o = sub.add_parser("outline", help="silhouette misses and additions on the held-out heads")
    o.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    o.add_argument("--heads", type=int, default=16)
    o.add_argument("--views", type=int, default=16)
    o.add_argument("--size", type=int, default=128, help="render size of the views")
    o.set_defaults(run=outline)
    g = sub.add_parser("grazing", help="the share of the front set a grazing fade would take")
    g.add_argument("--model", default=None, help="model folder (default: the bundled model)")
    g.add_argument("--low", type=float, default=0.3, help="the fade's cosine c: 0 at c, full from 2c")
    g.add_argument("photos", nargs="+")
    g.set_defaults(run=grazing)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    args.run(args)


if __name__ == "__main__":
    main()
