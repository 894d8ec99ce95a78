"""bench_vs_vllm.py's runs reduced to medians, and the medians laid out as issue 18's Markdown table."""

from __future__ import annotations

import statistics

PEER_NAMES = {"ours": "ours", "vllm": "vLLM"}
DTYPE_NAMES = {"float32": "fp32", "bfloat16": "bf16"}
THROUGHPUT_ROWS = {
    "1x1": "1 input/request, concurrency 1",
    "1x64": "1 input/request, concurrency 64",
    "32x1": "32 inputs/request, concurrency 1",
    "32x64": "32 inputs/request, concurrency 64",
}


def medians(runs: dict[str, dict[str, list[dict]]]) -> dict:
    """Per group and peer: each cell's median tokens/s, cores busy and p50 latency; the lowest cosine of all runs."""
    summary: dict = {}
    for group, peers in runs.items():
        for peer, sessions in peers.items():
            cells: dict = {}
            for key in sessions[0]:
                if key == "cosine":
                    cells[key] = min(session[key]["min"] for session in sessions)
                    continue
                if key == "idle":
                    cells[key] = statistics.median(session[key]["cores_busy"] for session in sessions)
                    continue
                cells[key] = {
                    "tokens_per_s": statistics.median(s[key]["tokens_per_s"] for s in sessions),
                    "cores_busy": statistics.median(s[key]["cores_busy"] for s in sessions),
                    "p50_ms": statistics.median(s[key]["latency_ms"]["p50"] for s in sessions),
                }
            summary.setdefault(group, {})[peer] = cells
    return summary


def markdown_table(summary: dict, args, peers: list[str], flops: dict, peak: float | None, cores: int) -> str:
    """Columns: each dtype's servers, then ours/vLLM when both ran; a dash where a row does not apply."""
    dtypes = list(dict.fromkeys([*args.dtypes, *(["bfloat16"] if args.decoder else [])]))

    def cells(group: str, key: str | None, value) -> list[str]:
        row = []
        for dtype in dtypes:
            found = {peer: summary.get(f"{group}/{dtype}", {}).get(peer, {}) for peer in peers}
            shown = {peer: value(found[peer][key] if key else found[peer]) if found[peer] else None for peer in peers}
            row += [text for text, _ in (shown[peer] or ("–", None) for peer in peers)]
            if len(peers) == 2:
                ours, theirs = shown["ours"], shown["vllm"]
                has_ratio = ours and theirs and ours[1] and theirs[1]
                row.append(f"{ours[1] / theirs[1]:.2f}x" if has_ratio else "")
        return row

    def tokens(cell: dict) -> tuple[str, float]:
        return f"{cell['tokens_per_s']:,.0f}", cell["tokens_per_s"]

    header = []
    for dtype in dtypes:
        header += [f"{PEER_NAMES[peer]} {DTYPE_NAMES[dtype]}" for peer in peers]
        header += ["ours/vLLM"] if len(peers) == 2 else []
    lines = [f"| tokens/s | {' | '.join(header)} |", "|---" * (len(header) + 1) + "|"]

    def add(label: str, row: list[str]) -> None:
        if any(text not in ("–", "") for text in row):  # a row no run filled (MiniLM's, with --dtypes none) is left out
            lines.append(f"| {label} | {' | '.join(row)} |")

    for key, label in THROUGHPUT_ROWS.items():
        add(label, cells("minilm", key, tokens))
    add(
        "one 9-token input, concurrency 1, p50",
        cells("minilm", "short", lambda cell: (f"{cell['p50_ms']:.1f} ms", None)),
    )
    add(
        f"server cores busy at 1/64 and 32/64 (of {cores})",
        cells("minilm", None, lambda c: (f"{c['1x64']['cores_busy']:.2f}, {c['32x64']['cores_busy']:.2f}", None)),
    )
    add("server cores busy while idle", cells("minilm", "idle", lambda v: (f"{v:.2f}", None)))
    if args.cosine_texts > 0:
        add("min cosine vs float32 sentence-transformers", cells("minilm", "cosine", lambda v: (f"{v:.6f}", None)))
    for length in args.lengths:
        label = f"{length} tokens each, {args.length_inputs_per_request} inputs/request, concurrency 64"
        add(label, cells("minilm", f"len{length}", tokens))
    if args.decoder:
        add("decoder (Qwen3-Embedding-0.6B shape), 1 input/request, concurrency 64", cells("decoder", "1x64", tokens))
    if peak:
        per_token = flops["minilm"]

        def fraction(cell: dict) -> tuple[str, float] | None:
            achieved = cell["tokens_per_s"] * per_token / 1e9
            return f"{achieved:.0f} GFLOP/s = {achieved / peak:.0%}", achieved

        label = f"model GFLOP/s at 32/64, of one bf16 linear's {peak:.0f} ({per_token / 1e6:.1f} MFLOP/token)"
        add(label, _bf16_only(cells("minilm", "32x64", fraction), dtypes, peers))
    return "\n".join(lines)


def _bf16_only(row: list[str], dtypes: list[str], peers: list[str]) -> list[str]:
    """Blank the float32 columns of a row that only means something in bfloat16."""
    width = len(peers) + (1 if len(peers) == 2 else 0)
    return [text if dtypes[i // width] == "bfloat16" else "–" for i, text in enumerate(row)]
