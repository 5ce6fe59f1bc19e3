#!/usr/bin/env python3
"""Writes a realistic Claude Code stream-json corpus for the meter benchmark.

The shape follows the captures in tests/fixtures/claude-code-2.1.197/: a system init line, then per
API call one assistant line per content block (the same message.id repeated, usage being the
message_start snapshot with output_tokens 1), a user line per tool result (most of the bytes:
command output and file contents, a few of them mentioning the word "usage" the way help texts
do), and a final result line with the session's cumulative usage, modelUsage and total_cost_usd.

Deterministic: the same seed and size give the same bytes. Does nothing when the file exists
(unless --force), so `make bench` generates it once.

usage: scripts/gen-corpus.py [--out build/bench/corpus.jsonl] [--mb 128] [--seed 1] [--force]
"""
import argparse
import json
import os
import random
import sys
import uuid

WORDS = (
    "the of and to in is for on that with as it at by this from be are or an not was if will can "
    "function return const let var import export class struct static void int char size_t while "
    "else error warning file path buffer stream line token budget meter ledger test build make "
    "commit branch merge diff patch status config option value default true false null none "
    "request response server client socket thread process signal child parent exit code output"
).split()
USAGE_TEXTS = (
    "usage: git [--version] [--help] [-C <path>] [-c <name>=<value>] <command> [<args>]",
    "Usage: make [options] [target] ...",
    "def usage():\n    print('usage: tool [-v] FILE')",
    "Memory usage: 412 MiB resident, 1.2 GiB virtual",
)


def rand_uuid(rng):
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def rand_hex(rng, n):
    return "%0*x" % (n, rng.getrandbits(4 * n))


def text(rng, nwords):
    words = rng.choices(WORDS, k=nwords)
    # Line breaks every dozen words or so, as in command output and source files.
    for i in range(12, len(words), rng.randint(8, 16)):
        words[i] += "\n"
    return " ".join(words)


def dumps(obj):
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="build/bench/corpus.jsonl")
    ap.add_argument("--mb", type=int, default=128, help="size in MiB (at least 100 for the bench)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--force", action="store_true", help="regenerate even if the file exists")
    args = ap.parse_args()

    if os.path.exists(args.out) and not args.force:
        return 0
    rng = random.Random(args.seed)
    target = args.mb << 20
    session = rand_uuid(rng)
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    tmp = args.out + ".tmp"
    sums = {"input_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
            "output_tokens": 0}
    calls = 0
    size = 0
    with open(tmp, "w", encoding="utf-8") as f:
        def put(obj):
            nonlocal size
            line = dumps(obj) + "\n"
            f.write(line)
            size += len(line.encode("utf-8"))

        put({"type": "system", "subtype": "init", "cwd": "/home/dev/project", "session_id": session,
             "tools": ["Task", "Bash", "Edit", "Read", "Write"], "model": "claude-opus-4-8",
             "slash_commands": ["test", "review", "usage"], "claude_code_version": "2.1.197",
             "uuid": rand_uuid(rng)})
        while size < target:
            calls += 1
            msg_id = "msg_" + rand_hex(rng, 24)
            usage = {"input_tokens": rng.randint(3, 5000),
                     "cache_creation_input_tokens": rng.randint(0, 2000),
                     "cache_read_input_tokens": rng.randint(0, 150000), "output_tokens": 1}
            final_output = rng.randint(1, 4000)
            blocks = []
            if rng.random() < 0.8:
                blocks.append({"type": "text", "text": text(rng, rng.randint(5, 200))})
            tool_ids = []
            for _ in range(rng.choice((0, 1, 1, 1, 2))):
                tool_id = "toolu_" + rand_hex(rng, 24)
                tool_ids.append(tool_id)
                blocks.append({"type": "tool_use", "id": tool_id, "name": "Bash",
                               "input": {"command": "grep -rn " + rng.choice(WORDS) + " src/",
                                         "description": "search"}})
            if not blocks:
                blocks.append({"type": "text", "text": "Done."})
            for block in blocks:
                put({"type": "assistant",
                     "message": {"id": msg_id, "type": "message", "role": "assistant",
                                 "model": "claude-opus-4-8", "content": [block],
                                 "stop_reason": None, "stop_sequence": None, "usage": usage,
                                 "context_management": None},
                     "parent_tool_use_id": None, "session_id": session, "uuid": rand_uuid(rng)})
            for key in sums:
                sums[key] += usage[key] if key != "output_tokens" else final_output
            for tool_id in tool_ids:
                # Tool results dominate the stream: a few hundred bytes to tens of KiB.
                out = text(rng, min(int(rng.paretovariate(1.3) * 120), 30000))
                if rng.random() < 0.02:
                    out += "\n" + rng.choice(USAGE_TEXTS)
                put({"type": "user",
                     "message": {"role": "user", "content": [
                         {"tool_use_id": tool_id, "type": "tool_result", "content": out,
                          "is_error": False}]},
                     "parent_tool_use_id": None, "session_id": session, "uuid": rand_uuid(rng),
                     "timestamp": "2026-11-28T17:08:47.218Z",
                     "tool_use_result": {"stdout": out, "stderr": "", "interrupted": False,
                                         "isImage": False, "noOutputExpected": False}})
        cost = round(sums["input_tokens"] * 5e-6 + sums["output_tokens"] * 25e-6
                     + sums["cache_creation_input_tokens"] * 6.25e-6
                     + sums["cache_read_input_tokens"] * 0.5e-6, 6)
        put({"type": "result", "subtype": "success", "is_error": False, "num_turns": calls,
             "session_id": session, "total_cost_usd": cost,
             "usage": dict(sums, server_tool_use={"web_search_requests": 0},
                           service_tier="standard", iterations=[]),
             "modelUsage": {"claude-opus-4-8": {
                 "inputTokens": sums["input_tokens"], "outputTokens": sums["output_tokens"],
                 "cacheReadInputTokens": sums["cache_read_input_tokens"],
                 "cacheCreationInputTokens": sums["cache_creation_input_tokens"],
                 "costUSD": cost}},
             "uuid": rand_uuid(rng)})
    os.replace(tmp, args.out)
    print("gen-corpus: %s: %d bytes, %d API calls" % (args.out, size, calls), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
