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
    # out: (48, 64) the propagated feature of every node (the GD-Unit's output)

    # The same call, with the learned and prior parts of the weights kept apart:
    result = layer(logits, reprs, *graph, return_parts=True)
    result.x, result.edges.learned, result.edges.prior  # (48, 64), (96,), (96,)
"""

import typing
from collections.abc import Sequence
from typing import Literal, NamedTuple, overload

import torch
from torch import Tensor
from torch.nn import Parameter
from torch_geometric.nn.conv import MessagePassing
from torch_geometric.nn.dense.linear import Linear
from torch_geometric.utils import softmax

__all__ = [
    "NORMALIZATIONS",
    "SCORERS",
    "DynamicGraphDistill",
    "EdgeWeights",
    "GraphDistillOutput",
    "Normalization",
]

Normalization = Literal["graph", "target"]
"""Over which edges the weights of :class:`DynamicGraphDistill` sum to one: all edges
of a sample (``"graph"``) or the edges into each student (``"target"``)."""
NORMALIZATIONS: tuple[str, ...] = typing.get_args(Normalization)
SCORERS = ("additive", "pairwise", "bilinear")
"""The edge scorers of :class:`DynamicGraphDistill`: DMD's ``"additive"`` score and two
pair-wise ones (ours)."""


class EdgeWeights(NamedTuple):
    r"""The edges of a GD-Unit and their weights, the parts kept apart.

    Attributes:
        edge_index (Tensor): ``(2, E)`` long, row 0 teacher, row 1 student (the
            edges the layer was given).
        weight (Tensor): ``(E,)`` the distillation weight :math:`w = E + \alpha p`
            (the losses' weight; :math:`\alpha = 1` unless the prior is annealed,
            :math:`w = E` without a prior).
        learned (Tensor): ``(E,)`` the learned, input-dependent weight :math:`E`.
        prior (Tensor or None): ``(E,)`` the prior weight :math:`p`, :obj:`None`
            without a prior.
    """

    edge_index: Tensor
    weight: Tensor
    learned: Tensor
    prior: Tensor | None


class GraphDistillOutput(NamedTuple):
    r"""What :class:`DynamicGraphDistill` computes, returned with
    :obj:`return_parts=True`.

    Attributes:
        x (Tensor): ``(N, F_out)`` the propagated feature :math:`\hat{\mathbf{x}}_j`
            of every node (the GD-Unit's output).
        edges (EdgeWeights): The edges with :math:`w`, :math:`E` and :math:`p`.
    """

    x: Tensor
    edges: EdgeWeights


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

    (without a prior, :math:`w = E`; with :obj:`prior_scale` :math:`\alpha` given to
    :meth:`forward`, :math:`w = E + \alpha p`, so an annealed prior can fade out). Both
    softmaxes run over the edges actually present, so pruned edges and absent nodes
    need no special case.

    **Scorers** (:obj:`scorer`). ``"additive"`` is DMD's score above: it is
    :math:`a(\mathbf{h}_j) + b(\mathbf{h}_i)`, a student part plus a teacher part, so
    it ranks the teachers of a sample once, alike for every student. The pair-wise
    scorers (ours, *[open]*) see the pair:

    .. math::
        \texttt{"pairwise"}:\ e_{i \rightarrow j} = \mathbf{w}_2^{\top}
        \mathrm{ReLU}\big(\mathbf{W}_1 [\mathbf{h}_i \Vert \mathbf{h}_j \Vert
        \mathbf{h}_i - \mathbf{h}_j \Vert \mathbf{h}_i \odot \mathbf{h}_j]
        + \mathbf{b}_1\big),
        \qquad
        \texttt{"bilinear"}:\ e_{i \rightarrow j} = \mathbf{h}_j^{\top}
        \mathbf{W} \mathbf{h}_i .

    With :obj:`context_channels`, every node also carries a context vector
    :math:`\mathbf{s}_m` (e.g. temporal statistics of its sequence) that enters the
    embedding, :math:`\mathbf{h}_m = [\mathbf{W}_y \mathbf{y}_m \Vert \mathbf{W}_r
    \mathbf{r}_m \Vert \mathbf{W}_s \mathbf{s}_m]`, and so the edge scores only.

    As in DHMD's published framework figure, the layer **outputs features**: every
    student receives its teachers' representations weighted by the same
    :math:`w`, in the style of :class:`~torch_geometric.nn.conv.GraphConv`,

    .. math::
        \hat{\mathbf{x}}_j = \mathbf{\Theta}_{root}\, \mathbf{r}_j +
        \mathbf{\Theta} \sum_{i \rightarrow j} w_{i \rightarrow j}\,
        \phi(\mathbf{r}_i) \; (+\, \mathbf{b}),

    where :math:`\mathbf{\Theta}` and :math:`\mathbf{\Theta}_{root}` are the
    identity (:obj:`out_channels=None`: :math:`\hat{\mathbf{x}}_j = \mathbf{r}_j +
    \sum_i w_{i \rightarrow j} \mathbf{r}_i`) or learned linear maps with a bias
    :math:`\mathbf{b}` (:obj:`out_channels` set), the root term is dropped with
    :obj:`root_weight=False`, and :math:`\phi` is the identity or, with
    :obj:`detach_teacher=True`, the stop-gradient :math:`\mathrm{sg}`. The logits
    enter the edge scores only. DHMD's figure shows that the GD-Unit outputs
    features, not how they are formed from the weighted messages (*open*): this is
    our design, each choice a constructor argument.

    **Who receives gradient.** The distillation losses are aggregations of weighted
    per-edge distances over the same edges and weights, see
    :func:`dhmd_graph.losses.graph_distillation_loss`: the edge scorer learns
    through the weights, students through the distances, and a teacher's value is
    never pulled toward its student (as in the reference, the teacher's embedding
    :math:`\mathbf{h}_i` still receives gradient through the edge score). The
    feature output is an ordinary message-passing path: by default
    (:obj:`detach_teacher=False`) a loss on :math:`\hat{\mathbf{x}}_j` reaches the
    teacher's representation :math:`\mathbf{r}_i` through the message, so a teacher
    learns to send what its students' task needs, and the edge scorer learns from
    the task which teacher helps whom; :obj:`detach_teacher=True` stops that path
    (the scorer still learns through :math:`w`).

    Edges are a :class:`torch.Tensor` :obj:`edge_index`, usually from
    :func:`~dhmd_graph.nn.modality_graph`, optionally pruned or passed through
    :func:`~dhmd_graph.nn.restrict_to_present` for missing modalities. A node
    without teachers (e.g. an absent modality) receives no message: its output is
    its root term alone, so absent nodes must be masked downstream.

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
        out_channels (int, optional): Size :math:`F_{out}` of the output features,
            through learned :math:`\mathbf{\Theta}`, :math:`\mathbf{\Theta}_{root}`
            and bias; :obj:`None` keeps :math:`F` with identity maps and no bias.
            (default: :obj:`None`)
        root_weight (bool, optional): If set to :obj:`False`, a node's own
            representation is not added to its output. (default: :obj:`True`)
        detach_teacher (bool, optional): If set to :obj:`True`, the messages carry
            :math:`\mathrm{sg}(\mathbf{r}_i)`: no gradient reaches a teacher's
            representation through its message. (default: :obj:`False`)
        bias (bool, optional): With :obj:`out_channels` set, whether the output
            has the learned bias :math:`\mathbf{b}`. (default: :obj:`True`)
        scorer (str, optional): The edge scorer, one of :data:`SCORERS`:
            ``"additive"`` (DMD's), ``"pairwise"`` (an MLP of width :math:`g` on the
            pair) or ``"bilinear"`` (see above). (default: :obj:`"additive"`)
        context_channels (int, optional): Size :math:`S` of a per-node context
            :math:`\mathbf{s}_m` entering the node embedding (:meth:`forward`'s
            :obj:`context`); :obj:`None` means none. (default: :obj:`None`)
        **kwargs (optional): Additional arguments of
            :class:`torch_geometric.nn.conv.MessagePassing`.

    Shapes:
        - **input:**
          node logits :math:`(|\mathcal{V}|, C)`,
          node representations :math:`(|\mathcal{V}|, F)`,
          edge indices :math:`(2, |\mathcal{E}|)` (row 0 teacher, row 1 student),
          batch vector :math:`(|\mathcal{V}|)`,
          node modalities :math:`(|\mathcal{V}|)` *(optional)*,
          node context :math:`(|\mathcal{V}|, S)` *(with* :obj:`context_channels` *)*
        - **output:** node features :math:`(|\mathcal{V}|, F_{out})`
          (:math:`F_{out} = F` without :obj:`out_channels`). If
          :obj:`return_edge_weights=True`, then :math:`((|\mathcal{V}|, F_{out}),
          ((2, |\mathcal{E}|), (|\mathcal{E}|)))` with the weights :math:`w`; if
          :obj:`return_parts=True`, a :class:`GraphDistillOutput`.
    """

    def __init__(
        self,
        logit_channels: int,
        repr_channels: int,
        hidden_channels: int,
        *,
        temperature: float = 8.0,
        normalize: Normalization = "graph",
        prior: Tensor | Sequence[Sequence[float]] | None = None,
        prior_temperature: float = 0.25,
        out_channels: int | None = None,
        root_weight: bool = True,
        detach_teacher: bool = False,
        bias: bool = True,
        scorer: str = "additive",
        context_channels: int | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("aggr", "add")
        super().__init__(node_dim=0, **kwargs)

        if normalize not in NORMALIZATIONS:
            raise ValueError(
                f"DynamicGraphDistill: normalize must be one of {NORMALIZATIONS}, "
                f"found {normalize!r}."
            )
        if scorer not in SCORERS:
            raise ValueError(
                f"DynamicGraphDistill: scorer must be one of {SCORERS}, found {scorer!r}."
            )
        if context_channels is not None and context_channels < 1:
            raise ValueError(
                f"DynamicGraphDistill: context_channels must be positive or None (no "
                f"context), found {context_channels}."
            )
        if temperature <= 0 or prior_temperature <= 0:
            raise ValueError(
                f"DynamicGraphDistill: temperature and prior_temperature must be "
                f"positive, found {temperature} and {prior_temperature}."
            )
        if out_channels is not None and out_channels < 1:
            raise ValueError(
                f"DynamicGraphDistill: out_channels must be positive or None (identity "
                f"maps), found {out_channels}."
            )

        self.logit_channels = logit_channels
        self.repr_channels = repr_channels
        self.hidden_channels = hidden_channels
        self.temperature = temperature
        self.normalize = normalize
        self.prior_temperature = prior_temperature
        self.out_channels = out_channels
        self.root_weight = root_weight
        self.detach_teacher = detach_teacher
        self.scorer = scorer
        self.context_channels = context_channels

        self.lin_logit = Linear(logit_channels, hidden_channels)
        self.lin_repr = Linear(repr_channels, hidden_channels)
        embed = (2 if context_channels is None else 3) * hidden_channels  # width of h
        # A bias would cancel in the softmax over each group, so no scorer has a last bias.
        self.lin_edge = Linear(2 * embed, 1, bias=False) if scorer == "additive" else None
        self.lin_pair = self.lin_pair_out = self.bilinear = self.lin_context = None
        if scorer == "pairwise":
            self.lin_pair = Linear(4 * embed, hidden_channels)
            self.lin_pair_out = Linear(hidden_channels, 1, bias=False)
        elif scorer == "bilinear":
            self.bilinear = Parameter(torch.empty(embed, embed))
        if context_channels is not None:
            self.lin_context = Linear(context_channels, hidden_channels)

        if out_channels is None:
            self.lin_message = self.lin_root = None
        else:
            self.lin_message = Linear(repr_channels, out_channels, bias=bias)
            self.lin_root = Linear(repr_channels, out_channels, bias=False) if root_weight else None

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
        for module in (self.lin_edge, self.lin_pair, self.lin_pair_out, self.lin_context):
            if module is not None:
                module.reset_parameters()
        if self.bilinear is not None:
            torch.nn.init.xavier_uniform_(self.bilinear)
        if self.lin_message is not None:
            self.lin_message.reset_parameters()
        if self.lin_root is not None:
            self.lin_root.reset_parameters()

    @overload
    def forward(
        self,
        logits: Tensor,
        reprs: Tensor,
        edge_index: Tensor,
        batch: Tensor,
        modality: Tensor | None = None,
        return_edge_weights: Literal[False] = False,
        *,
        return_parts: Literal[False] = False,
        context: Tensor | None = None,
        prior_scale: float | Tensor = 1.0,
    ) -> Tensor: ...

    @overload
    def forward(
        self,
        logits: Tensor,
        reprs: Tensor,
        edge_index: Tensor,
        batch: Tensor,
        modality: Tensor | None = None,
        *,
        return_edge_weights: Literal[True],
        return_parts: Literal[False] = False,
        context: Tensor | None = None,
        prior_scale: float | Tensor = 1.0,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]: ...

    @overload
    def forward(
        self,
        logits: Tensor,
        reprs: Tensor,
        edge_index: Tensor,
        batch: Tensor,
        modality: Tensor | None = None,
        return_edge_weights: Literal[False] = False,
        *,
        return_parts: Literal[True],
        context: Tensor | None = None,
        prior_scale: float | Tensor = 1.0,
    ) -> GraphDistillOutput: ...

    def forward(
        self,
        logits: Tensor,
        reprs: Tensor,
        edge_index: Tensor,
        batch: Tensor,
        modality: Tensor | None = None,
        return_edge_weights: bool = False,
        *,
        return_parts: bool = False,
        context: Tensor | None = None,
        prior_scale: float | Tensor = 1.0,
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]] | GraphDistillOutput:
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
            return_parts (bool, optional): If set to :obj:`True`, returns a
                :class:`GraphDistillOutput`: the features and an
                :class:`EdgeWeights` with :math:`w`, :math:`E` and :math:`p` apart.
                (default: :obj:`False`)
            context (torch.Tensor, optional): The node context :math:`(N, S)`,
                required with :obj:`context_channels` (and refused without).
                (default: :obj:`None`)
            prior_scale (float or torch.Tensor, optional): :math:`\alpha` of
                :math:`w = E + \alpha p` (an annealing schedule's factor);
                :attr:`EdgeWeights.prior` stays :math:`p`. (default: :obj:`1.0`)
        """
        if return_edge_weights and return_parts:
            raise ValueError(
                "DynamicGraphDistill.forward: pass return_edge_weights=True or "
                "return_parts=True, not both (the parts hold the weights too)."
            )
        if (context is None) != (self.lin_context is None):
            raise ValueError(
                f"DynamicGraphDistill.forward: a layer built with context_channels="
                f"{self.context_channels} needs {'no ' if context is None else ''}context "
                f"{'' if context is None else 'passed'}; pass a node context of shape "
                f"(N, context_channels) exactly when context_channels is set."
            )
        parts = [self.lin_logit(logits), self.lin_repr(reprs)]
        if self.lin_context is not None:
            parts.append(self.lin_context(context))
        h = torch.cat(parts, dim=-1)  # (N, 2g), or (N, 3g) with a context
        if self.lin_edge is not None:
            # w^T [h_student ; h_teacher] = w_s^T h_student + w_t^T h_teacher: score every
            # node once in both roles, then add two numbers per edge (as GATConv does).
            score_student, score_teacher = self.lin_edge.weight.view(2, -1) @ h.t()  # (N,)
        else:  # the pair-wise scorers read h_i, h_j in edge_update
            score_student = score_teacher = h.new_zeros(h.size(0))  # (N,)
        group = self._softmax_group(edge_index, batch)  # (E,)

        # edge_updater_type: (score_student: Tensor, score_teacher: Tensor, h: Tensor, group: Tensor)
        learned = self.edge_updater(edge_index, score_student=score_student,
                                    score_teacher=score_teacher, h=h, group=group)  # (E,)
        prior = self.prior_weight(edge_index, batch, modality)  # (E,) or None
        weight = learned if prior is None else learned + prior_scale * prior  # (E,)

        teacher = reprs.detach() if self.detach_teacher else reprs  # (N, F)
        # propagate_type: (x: Tensor, edge_weight: Tensor)
        out = self.propagate(edge_index, x=teacher, edge_weight=weight)  # (N, F)
        if self.lin_message is not None:
            out = self.lin_message(out)  # (N, F_out)
        if self.root_weight:
            out = out + (reprs if self.lin_root is None else self.lin_root(reprs))  # (N, F_out)

        if return_parts:
            return GraphDistillOutput(out, EdgeWeights(edge_index, weight, learned, prior))
        if return_edge_weights:
            return out, (edge_index, weight)
        return out

    def edge_update(self, score_student_i: Tensor, score_teacher_j: Tensor, h_i: Tensor,
                    h_j: Tensor, group: Tensor, dim_size: int) -> Tensor:
        # _i is the student (edge_index[1]), _j the teacher (edge_index[0]).
        if self.lin_pair is not None:  # MLP on [h_teacher, h_student, difference, product]
            pair = torch.cat([h_j, h_i, h_j - h_i, h_j * h_i], dim=-1)  # (E, 4 dim h)
            score = self.lin_pair_out(self.lin_pair(pair).relu()).squeeze(-1)  # (E,)
        elif self.bilinear is not None:  # h_student^T W h_teacher
            score = ((h_i @ self.bilinear) * h_j).sum(dim=-1)  # (E,)
        else:
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

        Arguments as in :meth:`forward`, which returns it with
        :obj:`return_parts=True` (``output.edges.prior``) without a second call.
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
        out = "" if self.out_channels is None else f", out={self.out_channels}"
        return (
            f"{self.__class__.__name__}({self.logit_channels}+{self.repr_channels}"
            f"{out}, hidden={self.hidden_channels}, normalize={self.normalize!r}, "
            f"temperature={self.temperature}, prior={self.prior is not None}, "
            f"root_weight={self.root_weight}, detach_teacher={self.detach_teacher}"
            f"{'' if self.scorer == 'additive' else f', scorer={self.scorer!r}'}"
            f"{'' if self.context_channels is None else f', context={self.context_channels}'})"
        )
