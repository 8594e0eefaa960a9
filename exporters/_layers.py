"""``toolkit.layers``: which graph tensor each torch module's output became.

The dynamo exporter tags every ONNX node with ``pkg.torch.onnx.name_scopes``: the module paths
(outermost first) whose forward produced it. Nodes are in topological order, so the last node inside
a module's scope produces that module's output (for a module called several times: its last call,
which is also what a forward hook sees last). Modules that produce no node (``nn.Identity``, e.g. a
folded BN, or Dropout in eval) return their input: the torch trace tells which tensor that is.
"""

from __future__ import annotations

import ast
import logging

import onnx
from torch import fx, nn

__all__ = ["map_layers"]

logger = logging.getLogger(__name__)

_SCOPES_KEY = "pkg.torch.onnx.name_scopes"
_NO_OP_MODULES = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)


def map_layers(model: onnx.ModelProto, module: nn.Module, input_name: str) -> dict[str, str]:
    """Module path -> graph tensor for every module of ``module`` that the graph can name."""
    paths = {path for path, _ in module.named_modules() if path}
    layers = _scope_outputs(model.graph, paths)
    _add_no_op_modules(layers, module, input_name)
    missing = sorted(paths - layers.keys())
    if missing:
        logger.debug("no graph tensor for module paths %s", missing)
    return {path: layers[path] for path in _module_order(module) if path in layers}


def _scope_outputs(graph: onnx.GraphProto, paths: set[str]) -> dict[str, str]:
    layers: dict[str, str] = {}
    for node in graph.node:
        if node.op_type == "Constant" or not node.output:
            continue  # constants do not carry a module's output
        for path in _node_scopes(node):
            if path in paths:
                layers[path] = node.output[0]  # later nodes overwrite: the last one is the output
    return layers


def _node_scopes(node: onnx.NodeProto) -> list[str]:
    for prop in node.metadata_props:
        if prop.key == _SCOPES_KEY:
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return []
            # [root "", module paths..., the traced op's own name]
            return [s for s in scopes[:-1] if isinstance(s, str) and s]
    return []


def _add_no_op_modules(layers: dict[str, str], module: nn.Module, input_name: str) -> None:
    """Give each Identity/Dropout module the tensor of its input, found through the torch trace."""
    try:
        graph = fx.symbolic_trace(module).graph
    except Exception as exc:  # untraceable: those paths simply stay unmapped
        logger.debug("no trace to map no-op modules (%s)", exc)
        return
    for node in graph.nodes:
        if node.op != "call_module" or str(node.target) in layers:
            continue
        if not isinstance(module.get_submodule(str(node.target)), _NO_OP_MODULES) or not node.args:
            continue
        source = node.args[0]
        if isinstance(source, fx.Node) and source.op == "placeholder":
            layers[str(node.target)] = input_name
        elif isinstance(source, fx.Node) and source.op == "call_module" and str(source.target) in layers:
            layers[str(node.target)] = layers[str(source.target)]


def _module_order(module: nn.Module) -> list[str]:
    return [path for path, _ in module.named_modules() if path]
