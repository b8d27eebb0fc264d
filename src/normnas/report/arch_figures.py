"""The chosen architecture as a picture: an NB201 cell as a graph, a macro chain as blocks."""

from __future__ import annotations

from html import escape
from typing import Any

NORM_COLOURS = {
    "batchnorm": "#c6dbef",
    "groupnorm": "#c7e9c0",
    "instancenorm": "#fdd0a2",
    "layernorm": "#dadaeb",
    "none": "#f0f0f0",
}
OP_SHORT = {
    "none": "none",
    "skip_connect": "skip",
    "nor_conv_1x1": "conv 1×1",
    "nor_conv_3x3": "conv 3×3",
    "avg_pool_3x3": "avg pool 3×3",
}


def _svg(width: int, height: int, cls: str, label: str, body: list[str]) -> str:
    return (
        f'<svg class="fig {cls}" role="img" aria-label="{escape(label)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'xmlns="http://www.w3.org/2000/svg"><defs><marker id="arrow" viewBox="0 0 10 10" '
        'refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="#555"/></marker></defs>' + "".join(body) + "</svg>"
    )


def nb201_cell(ops: tuple[str, ...] | list[str]) -> str:
    """The cell's 4 nodes and 6 edges (dst <- src), each labelled with its op; 'none'
    edges are drawn faint and dashed (they carry nothing)."""
    from normnas.spaces._nb201_model import EDGES

    xs = [50 + 150 * i for i in range(4)]
    y = 130
    body = []
    for (dst, src), op in zip(EDGES, ops, strict=True):
        x0, x1 = xs[src] + 18, xs[dst] - 18
        span = dst - src
        # longer edges arc further (up or down alternately); the arc's peak is at y + bend
        bend = 0 if span == 1 else (-1 if (src + dst) % 2 else 1) * 34 * span
        mx, my = (x0 + x1) / 2, y + bend
        dashed = ' stroke-dasharray="4,3" opacity="0.45"' if op == "none" else ""
        body.append(
            f'<g class="edge"><title>edge {dst}←{src}: {escape(op)}</title>'
            f'<path d="M{x0},{y} Q{mx},{y + 2 * bend} {x1},{y}" fill="none" stroke="#555" '
            f'stroke-width="1.5" marker-end="url(#arrow)"{dashed}/>'
            f'<text class="tick" x="{mx:.0f}" y="{my - 4 if bend <= 0 else my + 12:.0f}" '
            f'text-anchor="middle">{escape(OP_SHORT.get(op, op))}</text></g>'
        )
    for i, x in enumerate(xs):
        body.append(
            f'<g class="node"><title>node {i}</title><circle cx="{x}" cy="{y}" r="17" '
            f'fill="#fff" stroke="#333" stroke-width="1.5"/>'
            f'<text x="{x}" y="{y + 5}" text-anchor="middle">{i}</text></g>'
        )
    return _svg(560, 260, "arch-cell", "NB201 cell of the chosen architecture", body)


def macro_chain(arch: Any, strides: list[int], stem_width: int) -> str:
    """Stem, each stage's blocks (width, kernel, norm, placement, activation, residual),
    and the head, left to right; a block's colour is its norm."""
    bw, bh, gap = 118, 92, 22
    blocks: list[tuple[str, list[str], str, str]] = []  # (stage label, lines, fill, title)
    if stem_width:
        # the stem is a plain conv: every norm of the network is a searched one
        blocks.append(("stem", [f"conv 3×3, {stem_width}", "no norm"], "#eee", "stem conv"))
    for i, stage in enumerate(arch.stages):
        for j, b in enumerate(stage):
            place = b.placement.replace("_", "→")
            lines = [
                f"w{b.width} k{b.kernel}"
                + (f" /{strides[i]}" if j == 0 and strides[i] > 1 else ""),
                b.norm,
                place,
                b.activation + (" +res" if b.residual else ""),
            ]
            title = (
                f"stage {i} block {j}: width {b.width}, kernel {b.kernel}, norm {b.norm}, "
                f"placement {b.placement}, activation {b.activation}, "
                f"{'residual' if b.residual else 'plain'}"
            )
            blocks.append((f"stage {i}", lines, NORM_COLOURS.get(b.norm, "#fff"), title))
    blocks.append(("head", ["avg pool", f"dropout {arch.dropout:g}", "linear"], "#eee", "head"))
    width = 16 + len(blocks) * (bw + gap)
    body = []
    last_stage = None
    for k, (stage, lines, fill, title) in enumerate(blocks):
        x = 10 + k * (bw + gap)
        if stage != last_stage:
            body.append(f'<text class="label" x="{x}" y="16">{escape(stage)}</text>')
            last_stage = stage
        body.append(
            f'<g class="block"><title>{escape(title)}</title><rect x="{x}" y="26" '
            f'width="{bw}" height="{bh}" rx="6" fill="{fill}" stroke="#555"/>'
            + "".join(
                f'<text class="tick" x="{x + bw / 2:.0f}" y="{46 + 19 * n}" '
                f'text-anchor="middle">{escape(t)}</text>'
                for n, t in enumerate(lines)
            )
            + "</g>"
        )
        if k:
            body.append(
                f'<line x1="{x - gap + 1}" y1="{26 + bh / 2}" x2="{x - 2}" y2="{26 + bh / 2}" '
                'stroke="#555" marker-end="url(#arrow)"/>'
            )
    return _svg(width, 130, "arch-chain", "blocks of the chosen macro architecture", body)


def arch_figure(space: Any, params: dict[str, Any]) -> tuple[str, str]:
    """(SVG of the architecture, the recipe as text or '') for a study's space; ('', '')
    when the space is not one drawn here."""
    from normnas.search.spaces import network_part

    try:
        net_space, arch, recipe = network_part(space, space.from_params(params))
    except Exception:
        return "", ""
    recipe_text = recipe_str(space, recipe)
    if net_space.name == "nb201":
        return nb201_cell(tuple(arch)), recipe_text
    if net_space.name == "macro":
        strides = [s.stride for s in net_space.stages]
        return macro_chain(arch, strides, net_space.stem_width), recipe_text
    return "", recipe_text


def recipe_str(space: Any, recipe: Any) -> str:
    if recipe is None:
        return ""
    recipe_space = getattr(space, "recipe_space", None)
    try:
        return recipe_space.to_str(recipe) if recipe_space is not None else str(recipe)
    except Exception:
        return str(recipe)
