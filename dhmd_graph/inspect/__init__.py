r"""Looking inside a trained DHMD model: figures and numbers from a model and a split.

- :mod:`~dhmd_graph.inspect.spaces`: one pass of the model over a split
  (:func:`collect_outputs`), the 2-D views of the homogeneous and heterogeneous
  features and how well they separate the modalities.
- :mod:`~dhmd_graph.inspect.edges`: the distillation edge weights as one
  :class:`networkx.DiGraph` per space, and their evolution during training.
- :mod:`~dhmd_graph.inspect.reliability`: the edge weights against a planted per-sample
  modality reliability (did the graph learn something real?).
- :mod:`~dhmd_graph.inspect.dictionary`: dictionary activations and atom usage.
- :mod:`~dhmd_graph.inspect.missing`: the metrics of every subset of modalities.
- :mod:`~dhmd_graph.inspect.predictions`: per sample the prediction, the per-modality
  logits and the edge weights of a trained run, as a CSV file (``dhmd predict RUN_DIR``).
- :mod:`~dhmd_graph.inspect.report`: all of it as PNG figures and a Markdown report
  (``dhmd inspect RUN_DIR``).

Figures are :class:`matplotlib.figure.Figure` objects built without :mod:`pyplot`, so
they never open a window or need a display, and importing this package does not
change matplotlib's backend.
"""

from dhmd_graph.inspect.dictionary import AtomUsage, atom_usage, plot_atom_activations
from dhmd_graph.inspect.edges import (
    EdgeHistory,
    edge_graph,
    edge_graphs,
    edge_history,
    plot_edge_evolution,
    plot_edge_graphs,
)
from dhmd_graph.inspect.missing import evaluate_subsets, modality_subsets, predict_subsets
from dhmd_graph.inspect.predictions import predict_run, predict_table, write_predictions
from dhmd_graph.inspect.reliability import TeacherReliability, edge_reliability, outgoing_weight
from dhmd_graph.inspect.report import inspect_run, write_report
from dhmd_graph.inspect.spaces import (
    SpaceOutputs,
    SplitOutputs,
    collect_outputs,
    embed_spaces,
    modality_separation,
    plot_spaces,
)

__all__ = [
    "AtomUsage",
    "EdgeHistory",
    "SpaceOutputs",
    "SplitOutputs",
    "TeacherReliability",
    "atom_usage",
    "collect_outputs",
    "edge_graph",
    "edge_graphs",
    "edge_history",
    "edge_reliability",
    "embed_spaces",
    "evaluate_subsets",
    "inspect_run",
    "modality_separation",
    "modality_subsets",
    "outgoing_weight",
    "plot_atom_activations",
    "plot_edge_evolution",
    "plot_edge_graphs",
    "plot_spaces",
    "predict_run",
    "predict_subsets",
    "predict_table",
    "write_predictions",
    "write_report",
]
