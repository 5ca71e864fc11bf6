"""The production model's head inside its ONNX graph: expose the embedding, read and replace the head.

A classifier's graph ends in one linear layer (a Gemm; the softmax is already stripped at export):
`logits = embedding @ W + b`. `expose_embedding` adds that Gemm's input as a second graph output
named `embedding` (the device trains its head on it); the first output (logits) is untouched, so
every existing reader (evaluation, the golden check, the device's prediction) sees the same model.
`read_head` / `with_head` move the head's weights in and out, as W [d, k] and b [k].
Both stamp the backbone's digest (`backbone_digest`: everything but the head) into the model's
metadata_props: a device keys its federated samples on it, so a candidate that only changed the head
keeps them and a new backbone drops them.
"""

from __future__ import annotations

import numpy as np

from edge_agent.contract.federated import BACKBONE_METADATA
from edge_agent.model import EMBEDDING_OUTPUT


class HeadError(ValueError):
    """The graph does not end in a linear head this module understands."""


def _final_gemm(graph):
    out = graph.output[0].name
    for node in graph.node:
        if node.op_type == "Gemm" and out in node.output:
            return node
    raise HeadError(f"the graph output {out!r} is not produced by a Gemm (a linear head)")


def _attr(node, name: str, default):
    for a in node.attribute:
        if a.name == name:
            return a.f if a.type == a.FLOAT else a.i
    return default


def _inits(graph) -> dict:
    return {t.name: t for t in graph.initializer}


def read_head(model) -> tuple[np.ndarray, np.ndarray]:
    """(W [d, k], b [k]) of the final Gemm, with its alpha/beta/transB folded in."""
    from onnx import numpy_helper

    node = _final_gemm(model.graph)
    inits = _inits(model.graph)
    if len(node.input) < 3 or node.input[1] not in inits or node.input[2] not in inits:
        raise HeadError("the final Gemm's weights are not constant initializers")
    if _attr(node, "transA", 0):
        raise HeadError("the final Gemm transposes its input")
    w = numpy_helper.to_array(inits[node.input[1]]).astype(np.float32)
    w = w.T if _attr(node, "transB", 0) else w
    b = numpy_helper.to_array(inits[node.input[2]]).astype(np.float32).reshape(-1)
    return w * _attr(node, "alpha", 1.0), b * _attr(node, "beta", 1.0)


def with_head(model, w: np.ndarray, b: np.ndarray):
    """A copy of `model` whose final Gemm computes x @ w + b (same shapes as before)."""
    import onnx
    from onnx import numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    node = _final_gemm(out.graph)
    w0, b0 = read_head(out)
    w, b = np.asarray(w, np.float32), np.asarray(b, np.float32).reshape(-1)
    if w.shape != w0.shape or b.shape != b0.shape:
        raise HeadError(f"head shape {w.shape}/{b.shape} != the model's {w0.shape}/{b0.shape}")
    for a in list(node.attribute):  # the new weights carry everything: plain x @ W + b
        if a.name in ("alpha", "beta", "transB"):
            node.attribute.remove(a)
    inits = _inits(out.graph)
    for name, arr in ((node.input[1], w), (node.input[2], b)):
        inits[name].CopyFrom(numpy_helper.from_array(arr, name))
    onnx.checker.check_model(out)
    return stamp_backbone(out)


def backbone_digest(model) -> str:
    """sha256 of the graph without its head: every node but the final Gemm and the embedding
    Identity, every initializer but the head's, and the input; equal for models whose embeddings
    are computed identically, whatever their heads."""
    import hashlib

    graph = model.graph
    head = _final_gemm(graph)
    skip_inits = set(head.input[1:3])
    h = hashlib.sha256()
    for inp in graph.input:
        h.update(inp.SerializeToString(deterministic=True))
    for node in graph.node:
        if node != head and node.name != "flywheel_embedding":
            h.update(node.SerializeToString(deterministic=True))
    for t in sorted(graph.initializer, key=lambda t: t.name):
        if t.name not in skip_inits:
            h.update(t.SerializeToString(deterministic=True))
    return h.hexdigest()


def stamp_backbone(model):
    """Set metadata_props[BACKBONE_METADATA] to the backbone's digest (in place); returns model."""
    digest = backbone_digest(model)
    for p in model.metadata_props:
        if p.key == BACKBONE_METADATA:
            p.value = digest
            return model
    entry = model.metadata_props.add()
    entry.key, entry.value = BACKBONE_METADATA, digest
    return model


def expose_embedding(model):
    """Add the head's input as the graph output `embedding` [batch, d] (in place; idempotent)."""
    import onnx
    from onnx import TensorProto, helper

    graph = model.graph
    if any(o.name == EMBEDDING_OUTPUT for o in graph.output):
        return stamp_backbone(model)
    node = _final_gemm(graph)
    d = read_head(model)[0].shape[0]
    batch = graph.output[0].type.tensor_type.shape.dim[0]
    graph.node.append(helper.make_node("Identity", [node.input[0]], [EMBEDDING_OUTPUT],
                                       name="flywheel_embedding"))
    shape = [batch.dim_param or batch.dim_value or "batch", d]
    graph.output.append(helper.make_tensor_value_info(EMBEDDING_OUTPUT, TensorProto.FLOAT, shape))
    onnx.checker.check_model(model)
    return stamp_backbone(model)


def expose_embedding_file(path) -> None:
    """`expose_embedding` on an exported .onnx file, atomically (what the Learner's export calls)."""
    import os
    from pathlib import Path

    import onnx

    path = Path(path)
    model = onnx.load(str(path))
    try:
        expose_embedding(model)
    except HeadError:
        return  # not a linear-head classifier (e.g. a detector): nothing to expose
    tmp = path.with_suffix(".emb.tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, path)
