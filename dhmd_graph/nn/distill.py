r"""The Graph Distillation Unit (GD-Unit) as a PyG message-passing layer.

Example, for a batch of 16 samples with text, audio and vision (node ``b * 3 + m``)::

    import torch
    from dhmd_graph.losses import graph_distillation_loss
    from dhmd_graph.nn import DynamicGraphDistill, modality_graph

    prior = torch.zeros(3, 3)
    prior[0, 1] = prior[0, 2] = 1.0  # text teaches audio and vision
    layer = DynamicGraphDistill(1, 64, 64, prior=prior)
    graph = modality_graph(3, batch_size=16)  # (edge_index, batch, modality)
    logits, reprs = torch.randn(48, 1), torch.randn(48, 64)
    out, (edge_index, weight) = layer(logits, reprs, *graph, return_edge_weights=True)
    loss = graph_distillation_loss(logits, edge_index, weight, graph.batch, "l1")
"""

from collections.abc import Sequence

import torch
from torch import Tensor
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.utils import softmax

__all__ = ["DynamicGraphDistill"]

NORMALIZATIONS = ("graph", "target")


class DynamicGraphDistill(MessagePassing):
    r"""The dynamic graph distillation unit (GD-Unit) of Decoupled Hierarchical
    Multimodal Distillation (DHMD) from the `"Decoupled Hierarchical Distillation
    for Multimodal Emotion Recognition" <https://arxiv.org/abs/2602.04260>`_ paper
    (Li, Wang, Ding, Zhang, Lu, Guan), introduced by its predecessor DMD in the
    `"Decoupled Multimodal Distilling for Emotion Recognition"
    <https://arxiv.org/abs/2303.13802>`_ paper (Li et al., CVPR 2023).

    Each sample is a graph whose nodes are its modalities; an edge
    :math:`i \rightarrow j` lets teacher modality :math:`i` distil into student
    modality :math:`j`. Every node carries a logit :math:`\mathbf{y}` and a
    representation :math:`\mathbf{r}`, embedded as

    .. math::
        \mathbf{h}_m = \left[ \mathbf{W}_y \mathbf{y}_m \,\Vert\,
        \mathbf{W}_r \mathbf{r}_m \right],

    and each edge gets an input-dependent score and a learned weight

    .. math::
        e_{i \rightarrow j} = \mathbf{w}^{\top}
        \left[ \mathbf{h}_j \,\Vert\, \mathbf{h}_i \right],
        \qquad
        E_{i \rightarrow j} = \frac{\exp(e_{i \rightarrow j} / \tau)}
        {\sum_{k \rightarrow l \,\in\, \mathcal{G}(i \rightarrow j)}
        \exp(e_{k \rightarrow l} / \tau)},

    where the group :math:`\mathcal{G}(i \rightarrow j)` holds all edges of the
    same sample (:obj:`normalize="graph"`, the reference: the weights of one
    sample sum to one) or all edges into the same student
    (:obj:`normalize="target"`). An optional prior over edge types, given as logits
    :math:`\mathbf{P}` indexed ``[teacher modality, student modality]``, adds

    .. math::
        p_{i \rightarrow j} = \frac{\exp(P_{m_i, m_j} / \tau_p)}
        {\sum_{k \rightarrow l \,\in\, \mathcal{G}(i \rightarrow j)}
        \exp(P_{m_k, m_l} / \tau_p)},
        \qquad
        w_{i \rightarrow j} = E_{i \rightarrow j} + p_{i \rightarrow j}

    (without a prior, :math:`w = E`). Both softmaxes run over the edges actually
    present, so pruned edges and absent nodes need no special case. The layer
    returns, for every student, the weighted teacher signal with the teachers
    detached (:math:`\mathrm{sg}`, stop-gradient):

    .. math::
        \mathbf{x}^{\prime}_j = \sum_{i \rightarrow j} w_{i \rightarrow j}\,
        \mathrm{sg}\left( \left[ \mathbf{y}_i \,\Vert\, \mathbf{r}_i \right] \right).

    The distillation losses are aggregations of weighted per-edge distances over
    the same edges and weights, see
    :func:`dhmd_graph.losses.graph_distillation_loss`: the edge scorer learns
    through the weights, students through the distances, and a teacher's value is
    never pulled toward its student (as in the reference, the teacher's embedding
    :math:`\mathbf{h}_i` still receives gradient through the edge score).

    Edges are a :class:`torch.Tensor` :obj:`edge_index`, usually from
    :func:`~dhmd_graph.nn.modality_graph`, optionally pruned or passed through
    :func:`~dhmd_graph.nn.restrict_to_present` for missing modalities.

    Args:
        logit_channels (int): Size :math:`C` of each node's logit, or :obj:`-1` to
            infer it on the first call.
        repr_channels (int): Size :math:`F` of each node's representation, or
            :obj:`-1` to infer it on the first call.
        hidden_channels (int): Size :math:`g` of each half of the node embedding
            (:math:`\mathbf{h}` has :math:`2g` channels; the reference uses 64 in
            the homogeneous graph and 32 in the heterogeneous one).
        temperature (float, optional): The softmax temperature :math:`\tau` of the
            learned edge weights. (default: :obj:`8.0`)
        normalize (str, optional): The softmax groups, :obj:`"graph"` (all edges of
            a sample) or :obj:`"target"` (all edges into one student).
            (default: :obj:`"graph"`)
        prior (torch.Tensor or list, optional): An :math:`(M, M)` matrix (or nested
            list) of prior logits indexed ``[teacher, student]`` (the diagonal is
            never used), e.g. ones on text :math:`\rightarrow` audio and text
            :math:`\rightarrow` vision. Copied into the buffer :obj:`prior`.
            :obj:`None` means no prior.
            (default: :obj:`None`)
        prior_temperature (float, optional): The softmax temperature :math:`\tau_p`
            of the prior. (default: :obj:`0.25`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node logits :math:`(|\mathcal{V}|, C)`,
          node representations :math:`(|\mathcal{V}|, F)`,
          edge indices :math:`(2, |\mathcal{E}|)` (row 0 teacher, row 1 student),
          batch vector :math:`(|\mathcal{V}|)`,
          node modalities :math:`(|\mathcal{V}|)` *(optional)*
        - **output:** weighted teacher signal :math:`(|\mathcal{V}|, C + F)`
          (zero for a node with no teacher). If :obj:`return_edge_weights=True`,
          then :math:`((|\mathcal{V}|, C + F), ((2, |\mathcal{E}|),
          (|\mathcal{E}|)))`
    """

    def __init__(
        self,
        logit_channels: int,
        repr_channels: int,
        hidden_channels: int,
        *,
        temperature: float = 8.0,
        normalize: str = "graph",
        prior: Tensor | Sequence[Sequence[float]] | None = None,
        prior_temperature: float = 0.25,
        **kwargs,
    ) -> None:
        kwargs.setdefault("aggr", "add")
        super().__init__(node_dim=0, **kwargs)

        if normalize not in NORMALIZATIONS:
            raise ValueError(
                f"DynamicGraphDistill: normalize must be one of {NORMALIZATIONS}, "
                f"found {normalize!r}."
            )
        if temperature <= 0 or prior_temperature <= 0:
            raise ValueError(
                f"DynamicGraphDistill: temperature and prior_temperature must be "
                f"positive, found {temperature} and {prior_temperature}."
            )

        self.logit_channels = logit_channels
        self.repr_channels = repr_channels
        self.hidden_channels = hidden_channels
        self.temperature = temperature
        self.normalize = normalize
        self.prior_temperature = prior_temperature

        self.lin_logit = Linear(logit_channels, hidden_channels)
        self.lin_repr = Linear(repr_channels, hidden_channels)
        # A bias would cancel in the softmax over each group, so the scorer has none.
        self.lin_edge = Linear(4 * hidden_channels, 1, bias=False)

        if prior is not None:
            prior = torch.as_tensor(prior, dtype=torch.get_default_dtype()).detach().clone()
            if prior.dim() != 2 or prior.size(0) != prior.size(1) or prior.size(0) < 2:
                raise ValueError(
                    f"DynamicGraphDistill: prior must be an (M, M) matrix of logits "
                    f"indexed [teacher, student] with M >= 2, found shape "
                    f"{tuple(prior.shape)}."
                )
        self.register_buffer("prior", prior)

        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        self.lin_logit.reset_parameters()
        self.lin_repr.reset_parameters()
        self.lin_edge.reset_parameters()

    def forward(
        self,
        logits: Tensor,
        reprs: Tensor,
        edge_index: Tensor,
        batch: Tensor,
        modality: Tensor | None = None,
        return_edge_weights: bool = False,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        r"""Runs the forward pass of the module.

        Args:
            logits (torch.Tensor): The node logits :math:`(N, C)`.
            reprs (torch.Tensor): The node representations :math:`(N, F)`.
            edge_index (torch.Tensor): The edges :math:`(2, E)`, teacher to student.
            batch (torch.Tensor): The sample of every node :math:`(N,)`; graph ids
                must be smaller than :math:`N` (true whenever no graph is empty).
            modality (torch.Tensor, optional): The modality index of every node
                :math:`(N,)`, used to look up the prior. :obj:`None` means the
                layout of :func:`~dhmd_graph.nn.modality_graph`, node
                ``b * M + m``. (default: :obj:`None`)
            return_edge_weights (bool, optional): If set to :obj:`True`, also
                returns :obj:`(edge_index, weight)` with the distillation weight
                :math:`w = E + p` of every edge. (default: :obj:`False`)
        """
        h = torch.cat([self.lin_logit(logits), self.lin_repr(reprs)], dim=-1)  # (N, 2g)
        # w^T [h_student ; h_teacher] = w_s^T h_student + w_t^T h_teacher: score every node
        # once in both roles, then add two numbers per edge (as GATConv does).
        score_student, score_teacher = self.lin_edge.weight.view(2, -1) @ h.t()  # (N,), (N,)
        group = self._softmax_group(edge_index, batch)  # (E,)

        # edge_updater_type: (score_student: Tensor, score_teacher: Tensor, group: Tensor)
        weight = self.edge_updater(edge_index, score_student=score_student,
                                   score_teacher=score_teacher, group=group)  # (E,)
        prior = self.prior_weight(edge_index, batch, modality)
        if prior is not None:
            weight = weight + prior

        teacher = torch.cat([logits, reprs], dim=-1).detach()  # (N, C+F)
        # propagate_type: (x: Tensor, edge_weight: Tensor)
        out = self.propagate(edge_index, x=teacher, edge_weight=weight)  # (N, C+F)

        if return_edge_weights:
            return out, (edge_index, weight)
        return out

    def edge_update(self, score_student_i: Tensor, score_teacher_j: Tensor, group: Tensor,
                    dim_size: int) -> Tensor:
        # _i is the student (edge_index[1]), _j the teacher (edge_index[0]).
        score = score_student_i + score_teacher_j  # (E,) e = w^T [h_student ; h_teacher]
        return softmax(score / self.temperature, group, num_nodes=dim_size)

    def message(self, x_j: Tensor, edge_weight: Tensor) -> Tensor:
        return edge_weight.unsqueeze(-1) * x_j

    def prior_weight(
        self,
        edge_index: Tensor,
        batch: Tensor,
        modality: Tensor | None = None,
    ) -> Tensor | None:
        r"""The prior weight :math:`p` of every edge :math:`(E,)`, normalised over
        the same groups as the learned weight; :obj:`None` without a prior.

        Arguments as in :meth:`forward`. Callers recover the learned weight as
        :math:`E = w - p`.
        """
        if self.prior is None:
            return None
        if modality is None:
            num_modalities = self.prior.size(0)
            modality = torch.arange(batch.numel(), device=batch.device) % num_modalities
        logit = self.prior[modality[edge_index[0]], modality[edge_index[1]]]  # (E,)
        group = self._softmax_group(edge_index, batch)  # (E,)
        return softmax(logit / self.prior_temperature, group, num_nodes=batch.numel())

    def _softmax_group(self, edge_index: Tensor, batch: Tensor) -> Tensor:
        """The softmax group of every edge: its graph or its student node."""
        if self.normalize == "graph":
            return batch[edge_index[1]]
        return edge_index[1]

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}({self.logit_channels}+{self.repr_channels}, "
            f"hidden={self.hidden_channels}, normalize={self.normalize!r}, "
            f"temperature={self.temperature}, prior={self.prior is not None})"
        )
