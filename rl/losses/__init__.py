"""Pure objectives of representation learning. Imports nothing from the rest of `rl`.

Every loss is a function of arrays with keyword-only hyper-parameters and, where the objective depends on the
whole batch, an `axis_name` for data-parallel use inside `jax.shard_map` or `jax.pmap`: the value and gradients
then equal the single-device computation over the global batch (see `rl.losses._collectives` for the gradient
convention). The table of losses, their papers and what each needs from the caller is in `docs/losses.md`.
"""
from rl.losses.clustering import dino, dino_center_update, sinkhorn_knopp, swav
from rl.losses.contrastive import dcl, info_nce, nt_xent, supcon, supcon_simclr
from rl.losses.hypersphere import alignment, uniformity
from rl.losses.image_text import clip, siglip
from rl.losses.masked import mae, patchify, random_masking, unpatchify
from rl.losses.memory import (memory_bank_update, moco, nearest_neighbor, nearest_neighbor_index, nnclr, npid,
                              npid_nce_normalizer, queue_push)
from rl.losses.mutual_info import mi_dv, mi_infonce, mi_jsd, mi_nwj
from rl.losses.online_clustering import (ODCMemory, odc, odc_class_weights, odc_fix_small_clusters, odc_init, odc_update,
                           odc_update_centroids)
from rl.losses.pretext import (jigsaw_task, make_permutations, pretext_cross_entropy, relative_location_task,
                               rotation_task)
from rl.losses.redundancy import barlow_twins, byol, negative_cosine, vicreg, vicreg_terms, wmse

__all__ = [
    # contrastive
    "nt_xent", "info_nce", "dcl", "supcon", "supcon_simclr", "clip", "siglip", "alignment", "uniformity",
    # queues, support sets and memory banks
    "moco", "queue_push", "nnclr", "nearest_neighbor", "nearest_neighbor_index", "npid", "npid_nce_normalizer",
    "memory_bank_update",
    # regression and redundancy reduction
    "byol", "negative_cosine", "barlow_twins", "vicreg", "vicreg_terms", "wmse",
    # clustering and self-distillation
    "sinkhorn_knopp", "swav", "dino", "dino_center_update",
    "ODCMemory", "odc_init", "odc", "odc_update", "odc_update_centroids", "odc_class_weights",
    "odc_fix_small_clusters",
    # pretext tasks
    "rotation_task", "relative_location_task", "jigsaw_task", "make_permutations", "pretext_cross_entropy",
    # masked image modelling
    "patchify", "unpatchify", "random_masking", "mae",
    # mutual-information estimators
    "mi_infonce", "mi_nwj", "mi_dv", "mi_jsd",
]
