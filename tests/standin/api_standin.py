#!/usr/bin/env python3
"""Local stand-in of the Anthropic Messages API for the end-to-end tests of tbwrap.

The real Claude Code CLI is pointed at it with ANTHROPIC_BASE_URL. Every streamed
`POST /v1/messages` gets a scripted answer: N turns that call the Bash tool, then a final
text answer, each with configured token usage; optionally first a turn that starts N
subagents at once (Agent tool), each of which has its own short conversation. The turn is
derived from the request itself (how many tool results the conversation already holds),
never from server state, so any number of CLI instances can share one stand-in and each
gets its own correct sequence.

Every request is logged as one JSON line; the `billed` field is the usage a real API would
bill for it (every streamed call: the agent loop, side calls, subagents), which makes the log
the ground truth the tests compare tbwrap against.

Listens on 127.0.0.1 only, on a free port written (atomically) to --port-file.
Standard library only.
"""

import argparse
import json
import os
import re
import secrets
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

DEFAULTS = {
    "turns": 0,
    "usage": {"input": 1000, "cache_creation": 200, "cache_read": 3000, "output": 50},
    "bash": "echo tool-ran",
    "delay_ms": 0,
    # An extra pause before message_delta (the call's final output count): a final usage that
    # comes late. Claude Code 2.1.197 then writes the call's transcript lines with the
    # message_start snapshot only (output 1), and no line of the call has its final usage.
    "delta_delay_ms": 0,
    "text": "Turn {turn}. ",
    # Subagents: the first answer of a conversation with agents > 0 is that many Agent tool_use
    # blocks at once; each subagent then makes agent_turns Bash turns and a final text answer.
    "agents": 0,
    "agent_turns": 1,
    "agent_usage": None,  # None: the same as "usage"
    "agent_background": False,  # run_in_background of each Agent tool input
    "agent_bash": "echo sub-{agent} >> sub.marker",
    # Usage of the tool-less calls (1.0.x's side calls, 2.1.197's title call); None: "usage".
    "side_usage": None,
    # Growing calls: the input side of a main or subagent call is the request body's size
    # (one token per 4 bytes) instead of the usage's three input counts: what the previous
    # call was sent is a cache read, usage.input of the rest is uncached, the remainder (the
    # answer and the tool results since) a cache creation. The conversation grows as the CLI
    # resends it, as with a real API.
    "usage_from_body": False,
    # Added to usage.output per turn (turn k answers usage.output + k * output_step).
    "output_step": 0,
    # Of each call's cache creation, this many tokens are written to a 1-hour cache (the rest
    # to a 5-minute one): usage.cache_creation.{ephemeral_5m,ephemeral_1h}_input_tokens, as
    # the real API reports it. None: no split is sent (as 2.1.197's stand-in calls had none).
    "cache_1h": None,
}
USAGE_FIELDS = ("input", "cache_creation", "cache_read", "output")
SCENARIO_FIELDS = set(DEFAULTS) | {"by_command"}

# The CLI expands a slash command into this tag in the first user message.
COMMAND_RE = re.compile(r"<command-name>\s*(/[^<\s]+)\s*</command-name>")
SESSION_RE = re.compile(r"_session_([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$")


class ScenarioError(ValueError):
    pass


def check_fields(fields, where):
    """Rejects unknown keys and wrong types so a typo in a scenario fails loudly."""
    unknown = set(fields) - SCENARIO_FIELDS
    if unknown:
        raise ScenarioError(f"{where}: unknown field(s) {sorted(unknown)}")
    if "turns" in fields and (not isinstance(fields["turns"], int) or fields["turns"] < 0):
        raise ScenarioError(f"{where}: 'turns' must be an integer >= 0")
    for name in ("delay_ms", "delta_delay_ms"):
        if name in fields and (not isinstance(fields[name], (int, float)) or isinstance(fields[name], bool)
                               or fields[name] < 0):
            raise ScenarioError(f"{where}: '{name}' must be a number >= 0")
    for name in ("usage", "agent_usage", "side_usage"):
        if name not in fields or (name != "usage" and fields[name] is None):
            continue
        usage = fields[name]
        if not isinstance(usage, dict) or set(usage) - set(USAGE_FIELDS):
            raise ScenarioError(f"{where}: '{name}' must be an object with keys {list(USAGE_FIELDS)}")
        for k, v in usage.items():
            if not isinstance(v, int) or v < 0:
                raise ScenarioError(f"{where}: {name}.{k} must be an integer >= 0")
    for name in ("agents", "agent_turns"):
        if name in fields and (not isinstance(fields[name], int) or isinstance(fields[name], bool)
                               or fields[name] < 0):
            raise ScenarioError(f"{where}: '{name}' must be an integer >= 0")
    if "usage_from_body" in fields and not isinstance(fields["usage_from_body"], bool):
        raise ScenarioError(f"{where}: 'usage_from_body' must be true or false")
    if "cache_1h" in fields and fields["cache_1h"] is not None and (
            not isinstance(fields["cache_1h"], int) or isinstance(fields["cache_1h"], bool)
            or fields["cache_1h"] < 0):
        raise ScenarioError(f"{where}: 'cache_1h' must be null or an integer >= 0")
    if "output_step" in fields and (not isinstance(fields["output_step"], int)
                                    or isinstance(fields["output_step"], bool) or fields["output_step"] < 0):
        raise ScenarioError(f"{where}: 'output_step' must be an integer >= 0")
    if "agent_background" in fields and not isinstance(fields["agent_background"], bool):
        raise ScenarioError(f"{where}: 'agent_background' must be true or false")
    if "agent_bash" in fields and not isinstance(fields["agent_bash"], str):
        raise ScenarioError(f"{where}: 'agent_bash' must be a string")
    if "bash" in fields:
        bash = fields["bash"]
        ok = isinstance(bash, str) or (isinstance(bash, list) and bash and all(isinstance(b, str) for b in bash))
        if not ok:
            raise ScenarioError(f"{where}: 'bash' must be a string or a non-empty list of strings")
    if "text" in fields and not isinstance(fields["text"], str):
        raise ScenarioError(f"{where}: 'text' must be a string")


def merge(base, fields):
    out = dict(base)
    for k, v in fields.items():
        if k == "usage":
            out["usage"] = {**base["usage"], **v}
        elif k in ("agent_usage", "side_usage") and v is not None:
            out[k] = {**(base[k] or base["usage"]), **v}
        elif k != "by_command":
            out[k] = v
    return out


def load_scenario(path):
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ScenarioError(f"cannot read scenario {path}: {e}") from e
    if not isinstance(raw, dict):
        raise ScenarioError(f"{path}: the scenario must be a JSON object")
    check_fields(raw, path)
    base = merge(DEFAULTS, raw)
    by_command = {}
    for cmd, fields in (raw.get("by_command") or {}).items():
        if not cmd.startswith("/") or not isinstance(fields, dict):
            raise ScenarioError(f"{path}: by_command keys are '/name' and values objects")
        if "by_command" in fields:
            raise ScenarioError(f"{path}: by_command.{cmd} cannot nest by_command")
        check_fields(fields, f"{path}: by_command.{cmd}")
        by_command[cmd] = merge(base, fields)
    return base, by_command


def text_of(content):
    """Concatenated text of a message's content (a string or a list of blocks)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def find_command(messages):
    """The slash command of the conversation: the first user message that names one."""
    for m in messages:
        if m.get("role") != "user":
            continue
        hit = COMMAND_RE.search(text_of(m.get("content")))
        if hit:
            return hit.group(1)
    return None


def count_tool_results(messages):
    n = 0
    for m in messages:
        content = m.get("content")
        if m.get("role") == "user" and isinstance(content, list):
            n += sum(1 for b in content if isinstance(b, dict) and b.get("type") == "tool_result")
    return n


def count_tool_rounds(messages):
    """User messages that carry tool results: one per answered tool-use turn, however many
    tools that turn called (the Agent turn calls several at once)."""
    n = 0
    for m in messages:
        content = m.get("content")
        if m.get("role") == "user" and isinstance(content, list) and any(
                isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            n += 1
    return n


# The prompt the stand-in gives subagent k; its conversation is recognised by it.
AGENT_RE = re.compile(r"SUBAGENT-TASK (\d+)")


def find_agent(messages):
    """k when the conversation is subagent k's (its first user message is the prompt the
    stand-in wrote into an Agent tool_use), else None."""
    for m in messages:
        if m.get("role") == "user":
            hit = AGENT_RE.search(text_of(m.get("content")))
            return int(hit.group(1)) if hit else None
    return None


def agent_tool(body):
    """The name and input properties of the CLI's subagent tool: "Agent" (2.1.x), "Task"
    (older builds), or None when it offers neither."""
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("name") in ("Agent", "Task"):
            props = (tool.get("input_schema") or {}).get("properties") or {}
            return tool["name"], set(props)
    return None, set()


def request_kind(body):
    """'main' for the agent loop (it always offers tools), 'title' for the session-title call
    (a JSON-schema answer with a 'title' property), 'side' for any other tool-less call."""
    fmt = (body.get("output_config") or {}).get("format") or {}
    props = (fmt.get("schema") or {}).get("properties") or {} if isinstance(fmt, dict) else {}
    if "title" in props:
        return "title"
    return "main" if body.get("tools") else "side"


def tokens_of(n_bytes):
    return (n_bytes + 3) // 4


def grown_usage(sc, usage, turn, raw, body):
    """The usage of a main or subagent call under the scenario's growth fields."""
    usage = dict(usage)
    usage["output"] += sc["output_step"] * turn
    if not sc["usage_from_body"]:
        return usage
    total = tokens_of(len(raw))
    messages = body.get("messages") or []
    # What the previous call of the conversation was sent (all but its answer and the new
    # user turn) is read from the cache; the answer and the tool results are written to it.
    prefix = tokens_of(len(json.dumps({**body, "messages": messages[:-2]}, separators=(",", ":"))))
    usage["input"] = min(usage["input"], total)
    usage["cache_read"] = min(prefix, total - usage["input"])
    usage["cache_creation"] = total - usage["input"] - usage["cache_read"]
    return usage


def new_id(prefix):
    return prefix + secrets.token_hex(12)


class StandIn(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, scenario, by_command, log_path, dump_dir):
        super().__init__(("127.0.0.1", 0), Handler)
        self.scenario = scenario
        self.by_command = by_command
        self.dump_dir = dump_dir
        self.log_lock = threading.Lock()
        self.conn_sessions = {}
        self.log_file = open(log_path, "a", encoding="utf-8") if log_path else None
        self.seq = 0
        # Session id -> the slash command its main conversation started with: a side call or a
        # subagent's conversation names no command itself but belongs to the same session.
        self.session_commands = {}

    def command_of(self, session, command):
        with self.log_lock:
            if command and session:
                self.session_commands.setdefault(session, command)
                return command
            return command or self.session_commands.get(session)

    def log(self, record):
        with self.log_lock:
            self.seq += 1
            record = {"ts": round(time.time(), 6), "seq": self.seq, **record}
            if self.log_file:
                self.log_file.write(json.dumps(record, separators=(",", ":")) + "\n")
                self.log_file.flush()
            return self.seq


class Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 with chunked streams: the CLI's HTTP client keeps connections alive.
    protocol_version = "HTTP/1.1"
    server_version = "api-standin/1"

    def log_message(self, fmt, *args):  # the JSON log replaces the default stderr chatter
        pass

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return raw, json.loads(raw) if raw else None
        except json.JSONDecodeError:
            return raw, None

    def session(self, body):
        sid = self.session_named(body)
        # A request that names no session (1.0.x sends one now and then without metadata)
        # belongs to the session of the connection it came on: a keep-alive connection is one
        # client's, and each session is its own process.
        conns = self.server.conn_sessions
        with self.server.log_lock:
            if sid:
                conns[self.client_address] = sid
                return sid
            return conns.get(self.client_address)

    def session_named(self, body):
        sid = self.headers.get("x-claude-code-session-id")
        if sid:
            return sid
        meta = body.get("metadata") if isinstance(body, dict) else None
        if isinstance(meta, dict) and isinstance(meta.get("user_id"), str):
            # 1.0.x sends no session header; its user_id ends in "_session_<session id>".
            user = meta["user_id"]
            hit = SESSION_RE.search(user)
            return hit.group(1) if hit else user
        return None

    def dump(self, seq, raw):
        if self.server.dump_dir:
            with open(os.path.join(self.server.dump_dir, f"req-{seq:04d}.json"), "wb") as f:
                f.write(json.dumps({"path": self.path, "headers": dict(self.headers)}).encode() + b"\n")
                f.write(raw)

    def send_json(self, status, obj):
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", new_id("req_"))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    # --- anything that is not a message: answer something valid, never bill it ---

    def do_GET(self):
        seq = self.server.log({"method": "GET", "path": self.path, "stream": False, "kind": "other", "command": None,
                               "turn": None, "message_id": None, "billed": None, "session": None})
        self.dump(seq, b"")
        self.send_json(200, {})

    def do_HEAD(self):
        self.server.log({"method": "HEAD", "path": self.path, "stream": False, "kind": "other", "command": None,
                         "turn": None, "message_id": None, "billed": None, "session": None})
        self.send_json(200, {})

    def do_POST(self):
        raw, body = self.read_body()
        route = urlsplit(self.path).path
        if route != "/v1/messages" or not isinstance(body, dict):
            seq = self.server.log({"method": "POST", "path": self.path, "stream": False, "kind": "other", "command": None,
                                   "turn": None, "message_id": None, "billed": None,
                                   "session": self.session(body)})
            self.dump(seq, raw)
            if route.endswith("/count_tokens"):
                self.send_json(200, {"input_tokens": 1})
            else:
                self.send_json(200, {})
            return

        messages = body.get("messages") or []
        session = self.session(body)
        kind = request_kind(body)
        agent = find_agent(messages) if kind == "main" else None
        if agent is not None:
            kind = "subagent"
        # A side call or a subagent counts under its session's command, as the CLI's own
        # budget key (and tbwrap's) puts all of a session's usage.
        command = self.server.command_of(session, find_command(messages) if kind == "main" else None)
        sc = self.server.by_command.get(command, self.server.scenario)
        stream = bool(body.get("stream"))
        msg_id = new_id("msg_")
        model = body.get("model") or "claude-standin"
        plan, turn, text, usage = self.plan(sc, kind, agent, messages, body, stream)
        if kind in ("main", "subagent"):
            usage = grown_usage(sc, usage, turn, raw, body)
        if kind == "title":
            text = json.dumps({"title": "Stand-in session"})

        # Every streamed call is billed, as a real API bills it: the agent loop, subagents, the
        # side calls 1.0.x makes to a small model and the session-title call of 2.1.197. The
        # CLI's result `usage` and its session transcript hold only the main calls; its
        # modelUsage holds them all (tests/e2e/test_standin.sh checks both).
        billed = {k: usage[k] for k in USAGE_FIELDS} if stream else None
        if billed is not None and sc["cache_1h"] is not None:
            billed["cache_1h"] = min(sc["cache_1h"], usage["cache_creation"])
        seq = self.server.log({"method": "POST", "path": self.path, "stream": stream, "kind": kind,
                               "command": command, "turn": turn, "message_id": msg_id, "billed": billed,
                               "session": session, "model": model,
                               "max_tokens": body.get("max_tokens"), "tool_use": plan is not None,
                               "agent": agent, "plan": plan[0] if plan else None})
        self.dump(seq, raw)

        if not stream:
            # Side requests (quota checks, titles...): a minimal, valid, zero-usage message.
            self.send_json(200, {
                "id": msg_id, "type": "message", "role": "assistant", "model": model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0, "output_tokens": 0},
            })
            return
        self.stream_message(msg_id, model, plan, text, usage, sc["delay_ms"], sc["cache_1h"],
                            sc["delta_delay_ms"])

    @staticmethod
    def plan(sc, kind, agent, messages, body, stream):
        """What this call answers: (plan, turn, text, usage), plan being None (text only),
        ("bash", command) or ("agents", [tool inputs]) with the Agent tool's name."""
        if kind == "subagent":
            turn = count_tool_rounds(messages)
            plan = None
            if stream and turn < sc["agent_turns"]:
                plan = ("bash", sc["agent_bash"].replace("{agent}", str(agent)).replace("{turn}", str(turn)))
            return plan, turn, f"Subagent {agent} turn {turn}. ", sc["agent_usage"] or sc["usage"]
        turn = count_tool_results(messages)
        if kind in ("side", "title"):
            return None, turn, sc["text"].replace("{turn}", str(turn)), sc["side_usage"] or sc["usage"]
        plan = None
        if kind == "main" and sc["agents"] > 0:
            rounds = count_tool_rounds(messages)
            name, props = agent_tool(body)
            if rounds == 0 and name:
                inputs = []
                for k in range(1, sc["agents"] + 1):
                    inp = {"description": f"Run check {k}", "prompt": f"SUBAGENT-TASK {k}: run the check and report.",
                           "subagent_type": "general-purpose", "run_in_background": sc["agent_background"]}
                    # Only what this build's tool schema has (additionalProperties is false).
                    inputs.append({k2: v for k2, v in inp.items() if k2 in props or k2 in ("description", "prompt")})
                plan = ("agents", name, inputs) if stream else None
            elif rounds > 0 and name:
                turn = rounds - 1  # the Agent round came first, then the Bash turns
        if plan is None and stream and kind == "main" and turn < sc["turns"]:
            bash = sc["bash"]
            plan = ("bash", bash if isinstance(bash, str) else bash[min(turn, len(bash) - 1)])
        return plan, turn, sc["text"].replace("{turn}", str(turn)), sc["usage"]

    def stream_message(self, msg_id, model, plan, text, usage, delay_ms, cache_1h=None, delta_delay_ms=0):
        start_usage = {"input_tokens": usage["input"],
                       "cache_creation_input_tokens": usage["cache_creation"],
                       "cache_read_input_tokens": usage["cache_read"],
                       "output_tokens": 1}
        if cache_1h is not None:
            h1 = min(cache_1h, usage["cache_creation"])
            start_usage["cache_creation"] = {"ephemeral_5m_input_tokens": usage["cache_creation"] - h1,
                                             "ephemeral_1h_input_tokens": h1}
        events = [("message_start", {"type": "message_start", "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": start_usage}})]
        events += [
            ("content_block_start", {"type": "content_block_start", "index": 0,
                                     "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                     "delta": {"type": "text_delta", "text": text}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]
        tools = []
        if plan and plan[0] == "bash":
            tools = [("Bash", {"command": plan[1], "description": "run"})]
        elif plan and plan[0] == "agents":
            tools = [(plan[1], inp) for inp in plan[2]]
        for index, (name, inp) in enumerate(tools, start=1):
            tool_input = json.dumps(inp)
            half = len(tool_input) // 2  # two partial deltas, as the real API splits JSON
            events += [
                ("content_block_start", {"type": "content_block_start", "index": index, "content_block": {
                    "type": "tool_use", "id": new_id("toolu_"), "name": name, "input": {}}}),
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                    "type": "input_json_delta", "partial_json": tool_input[:half]}}),
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {
                    "type": "input_json_delta", "partial_json": tool_input[half:]}}),
                ("content_block_stop", {"type": "content_block_stop", "index": index}),
            ]
        events += [
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "tool_use" if tools else "end_turn",
                                         "stop_sequence": None},
                               "usage": {"output_tokens": usage["output"]}}),
            ("message_stop", {"type": "message_stop"}),
        ]

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", new_id("req_"))
        self.end_headers()
        delay = delay_ms / 1000.0
        try:
            for name, data in events:
                if delay:
                    time.sleep(delay)
                if name == "message_delta" and delta_delay_ms:
                    time.sleep(delta_delay_ms / 1000.0)
                chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            # The client went away (killed by a budget stop); the log already holds the call.
            self.close_connection = True


def write_port_file(path, port):
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scenario", required=True, help="scenario JSON file")
    ap.add_argument("--port-file", required=True, help="where to write the port, once listening")
    ap.add_argument("--log", required=True, help="JSON-lines request log (the ground truth)")
    ap.add_argument("--dump-dir", help="also save every request's headers and body here")
    args = ap.parse_args(argv)

    try:
        scenario, by_command = load_scenario(args.scenario)
    except ScenarioError as e:
        print(f"api_standin: {e}", file=sys.stderr)
        return 2
    if args.dump_dir:
        os.makedirs(args.dump_dir, exist_ok=True)

    server = StandIn(scenario, by_command, args.log, args.dump_dir)

    def on_term(signum, frame):
        # shutdown() waits for serve_forever() to return, so it cannot run on this thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    write_port_file(args.port_file, server.server_address[1])
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        if server.log_file:
            server.log_file.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
