"""Pure objectives of representation learning. Imports nothing from the rest of `rl`.

Every loss is a function of arrays with keyword-only hyper-parameters and, where the objective depends on the
whole batch, an `axis_name` for data-parallel use inside `jax.shard_map` or `jax.pmap`: the value and gradients
then equal the single-device computation over the global batch (see `rl.losses._collectives` for the gradient
convention). The table of losses, their papers and what each needs from the caller is in `docs/losses.md`.

A loss with `return_terms=True` returns `(loss, terms)`: `terms` is a dict of its named parts (the unweighted
terms, for logging), e.g. `beta_vae` -> {"reconstruction", "kl"}, `esmm` -> {"ctr", "ctcvr"}; the keys of
`matryoshka` and `fmrlrec_loss` are the nesting sizes, those of `slfm_loss` its four terms; `lens_loss` ->
{"adversarial", "reconstruction"}, `scfs_loss` -> {"global", "search"}, `nft_loss` -> {"prediction", "alignment"},
`fedsa_loss` -> {"regularization", "contrastive", "calibration"}, `mirror_loss` -> {"alignment", "wsi_retention",
"rna_retention", "style", "cluster"}, `disentangler_loss` -> {"reconstruction", "correlation", "environment",
"adversarial"}, `dwc_loss` -> {"distillation", "contrast"},
`legato_loss` -> {"reconstruction", "graph_reconstruction", "orthogonality", "sparsity"}.
"""
from rl.losses.audio_visual import (cogenav_sync_loss, slfm_angle, slfm_binaural_cue, slfm_binaural_loss,
                                    slfm_binauralization_loss, slfm_geometric_loss, slfm_loss, slfm_symmetry_loss)
from rl.losses.clustering import dino, dino_center_update, sinkhorn_knopp, swav
from rl.losses.contrastive import contrastive_unsupervised_loss, dcl, info_nce, nt_xent, supcon, supcon_simclr
from rl.losses.hypersphere import alignment, l2_normalize, uniformity
from rl.losses.image_text import clip, siglip
from rl.losses.kinship import facornet_loss
from rl.losses.medical import volume_mask_tokens, volume_masked_embedding_loss, volume_slice_mask
from rl.losses.crop_sets import scale_dense_loss, scale_loss, scale_split_sets, scale_token_mask
from rl.losses.deepcluster import deepcluster_v2, deepcluster_v2_assign, deepcluster_v2_memory_update
from rl.losses.masked import (mae, patchify, random_masking, time_series_patches, tslanet_loss, tslanet_masking,
                              unpatchify)
from rl.losses.memory import (memory_bank_update, moco, nearest_neighbor, nearest_neighbor_index, nnclr, npid,
                              npid_nce_normalizer, queue_push)
from rl.losses.mutual_info import mi_dv, mi_infonce, mi_jsd, mi_nwj
from rl.losses.online_clustering import (ODCMemory, odc, odc_class_weights, odc_fix_small_clusters, odc_init, odc_update,
                           odc_update_centroids)
from rl.losses.pathology import mirror_cluster_loss, mirror_loss, mirror_retention_loss, mirror_style_loss
from rl.losses.point_cloud import dwc_contrast_loss, dwc_loss, dwc_teacher_targets
from rl.losses.positional import rasa_position_loss, rasa_remove_position
from rl.losses.speaker import (disentangler_decoder_input, disentangler_loss, environment_triplet_loss,
                                gradient_reversal, mapc_loss)
from rl.losses.slide import cobra_pad_or_sample, cobra_views
from rl.losses.shortcuts import lens_loss, sieve_aux_loss, sieve_forget_loss, sieve_forget_schedule
from rl.losses.pretext import (jigsaw_task, make_permutations, pretext_cross_entropy, relative_location_task,
                               rotation_task)
from rl.losses.redundancy import barlow_twins, byol, negative_cosine, vicreg, vicreg_terms, wmse
from rl.losses.dense import (feature_coordinates, pixcontrast, pixel_positive_mask, pixpro, slot_assignments,
                             slot_pooling, slotcon_group_loss, slotcon_slot_loss)
from rl.losses.distillation import (attention_transfer, cl2r_stationarity, csd, feature_regression,
                                    mokd_cross_distillation, mokd_self_distillation, simplex_classifier_loss,
                                    simplex_prototypes)
from rl.losses.autoregressive import (semaim_attention_masks, semaim_feature_loss, semaim_order, semaim_pixel_loss,
                                     semaim_similarity)
from rl.losses.diffusion import diti_condition, diti_loss, diti_masks, diti_noising
from rl.losses.equivariant import nft_loss, nft_so2_representation, nft_transition
from rl.losses.federated import (fedsa_anchor_update, fedsa_class_gap, fedsa_loss, fedsa_margin_contrastive,
                                 fedsa_prototypes)
from rl.losses.feature_augment import hallucinate, scfs_feature_search, scfs_loss, semantic_adversarial
from rl.losses.generative import bigan_discriminator_loss, bigan_generator_encoder_loss, beta_vae, reparameterize
from rl.losses.foresight import foresight_loss, foresight_prefix_split
from rl.losses.geometry import (enveloping_loss, homogeneity_loss, pairwise_sinkhorn_divergence,
                                regression_bin_centroids, sinkhorn_divergence, surrogate_contrastive_loss)
from rl.losses.graph import node2vec_walks, sample_neighbors, skipgram_negative_sampling, walk_context_pairs
from rl.losses.kmeans import assign_topk, spherical_kmeans
from rl.losses.margin import arcface_logit, multilabel_cluster_loss, partial_margin_softmax
from rl.losses.multitask import esmm
from rl.losses.neighbors import snn_annealing_schedule, soft_nearest_neighbor
from rl.losses.nested import (fmrlrec_loss, matryoshka, nested_cluster_loss, nested_layer_norm, nested_linear,
                              nested_weight_mask)
from rl.losses.tabular import legato_graph, legato_loss, legato_pool
from rl.losses.temporal import (contrastive_transition_loss, decorrelated_prediction, premier_taco,
                                premier_taco_negatives, taco)
from rl.losses.video import bidirectional_prediction, iic, intra_negatives

__all__ = [
    # contrastive
    "nt_xent", "info_nce", "dcl", "supcon", "supcon_simclr", "clip", "siglip", "alignment", "uniformity",
    "l2_normalize", "contrastive_unsupervised_loss",
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
    # masked image and time-series modelling
    "patchify", "unpatchify", "random_masking", "mae", "time_series_patches", "tslanet_masking", "tslanet_loss",
    # mutual-information estimators
    "mi_infonce", "mi_nwj", "mi_dv", "mi_jsd",
    # --- Loss library II: the objectives of the seed papers ---
    # retrieval, margins and clusters
    "partial_margin_softmax", "multilabel_cluster_loss", "arcface_logit", "spherical_kmeans", "assign_topk",
    "soft_nearest_neighbor", "snn_annealing_schedule", "matryoshka", "nested_cluster_loss", "nested_weight_mask",
    "nested_linear", "nested_layer_norm", "fmrlrec_loss",
    # distillation and lifelong representations
    "csd", "simplex_prototypes", "simplex_classifier_loss", "cl2r_stationarity", "mokd_self_distillation",
    "mokd_cross_distillation", "feature_regression", "attention_transfer",
    # feature-space augmentation
    "hallucinate", "semantic_adversarial", "scfs_feature_search", "scfs_loss",
    # shortcut removal
    "sieve_aux_loss", "sieve_forget_loss", "sieve_forget_schedule", "lens_loss",
    # temporal, video and reinforcement learning
    "taco", "premier_taco", "premier_taco_negatives", "decorrelated_prediction", "contrastive_transition_loss",
    "intra_negatives", "iic", "bidirectional_prediction",
    # sets of clip features from a frozen video backbone (SCALE)
    "scale_split_sets", "scale_token_mask", "scale_dense_loss", "scale_loss",
    # audio-visual: lip-audio synchrony, sound localisation from motion
    "cogenav_sync_loss", "slfm_angle", "slfm_geometric_loss", "slfm_binaural_cue", "slfm_binaural_loss",
    "slfm_symmetry_loss", "slfm_loss", "slfm_binauralization_loss",
    # speaker and kinship verification: environment disentanglement, attention-guided contrast
    "gradient_reversal", "mapc_loss", "environment_triplet_loss", "disentangler_decoder_input", "disentangler_loss",
    "facornet_loss",
    # dense and object-centric
    "feature_coordinates", "pixel_positive_mask", "pixcontrast", "pixpro", "slot_assignments", "slot_pooling",
    "slotcon_group_loss", "slotcon_slot_loss",
    # positional disentanglement of dense features
    "rasa_position_loss", "rasa_remove_position",
    # autoregressive image modelling
    "semaim_similarity", "semaim_order", "semaim_attention_masks", "semaim_pixel_loss", "semaim_feature_loss",
    # diffusion time-steps
    "diti_masks", "diti_condition", "diti_noising", "diti_loss",
    # equivariance
    "nft_transition", "nft_so2_representation", "nft_loss",
    # point clouds: global-to-local distillation with contrast
    "dwc_teacher_targets", "dwc_contrast_loss", "dwc_loss",
    # multi-modal pathology
    "mirror_retention_loss", "mirror_style_loss", "mirror_cluster_loss", "mirror_loss",
    # slide-level pathology: COBRA's views in feature space
    "cobra_pad_or_sample", "cobra_views",
    # prototype-based federated learning
    "fedsa_margin_contrastive", "fedsa_loss", "fedsa_prototypes", "fedsa_class_gap", "fedsa_anchor_update",
    # medical image volumes: masked slice embeddings
    "volume_slice_mask", "volume_mask_tokens", "volume_masked_embedding_loss",
    # DeepCluster-v2 (the joint image-volume paper's released clustering stage)
    "deepcluster_v2_assign", "deepcluster_v2", "deepcluster_v2_memory_update",
    # UI screens: captioning the next screen (Textual Foresight)
    "foresight_loss", "foresight_prefix_split",
    # multi-view tabular data: a latent graph over the views (LEGATO)
    "legato_graph", "legato_pool", "legato_loss",
    # geometry and transport
    "sinkhorn_divergence", "pairwise_sinkhorn_divergence", "regression_bin_centroids", "enveloping_loss",
    "homogeneity_loss", "surrogate_contrastive_loss",
    # generative, graph and multi-task
    "bigan_discriminator_loss", "bigan_generator_encoder_loss", "beta_vae", "reparameterize",
    "node2vec_walks", "walk_context_pairs", "skipgram_negative_sampling", "sample_neighbors", "esmm",
]
