/*
 * Agent recognition, prompt keys, output modes and transcript paths.
 *
 * argv is read the way Claude Code's own command line parser (commander) reads it: an option
 * that takes a value consumes the next word (or its "=value"), an option with an optional value
 * consumes the next word unless that starts with '-', a variadic option (--allowedTools A B ...)
 * consumes words up to the next option, and the prompt is the first word left over. Getting this
 * wrong would put an agent's usage under the wrong budget, so the table below is the union of
 * the options of every Claude Code version tbwrap is tested with (tests/e2e/test_cli_options.sh
 * checks it against each one's --help).
 */
#include "tbwrap/agent.h"

#include <string.h>

#include "tbwrap/env.h"
#include "tbwrap/ledger.h"

enum arity { A_FLAG = 0, A_VALUE = 1, A_VARIADIC = 2, A_OPTIONAL = 3 };

struct option_spec {
	const char *name;
	enum arity arity;
};

/* Options that take something; every other word starting with '-' is a flag. The union of the
 * root options of Claude Code 1.0.128, 2.1.197 and 2.1.332, hidden ones included (read from the
 * commander definitions in each build, and from 2.1.332's own argv pre-scanner, which also knows
 * --exec, --handle-uri, --routine, -m and --project). Where versions differ (--remote: a value in
 * 1.0.128, optional since) the newer rule is kept. */
static const struct option_spec options[] = {
	{"--add-dir", A_VARIADIC},
	{"--advisor", A_VALUE},
	{"--agent", A_VALUE},
	{"--agent-color", A_VALUE},
	{"--agent-id", A_VALUE},
	{"--agent-name", A_VALUE},
	{"--agent-type", A_VALUE},
	{"--agents", A_VALUE},
	{"--allowed-tools", A_VARIADIC},
	{"--allowedTools", A_VARIADIC},
	{"--append-subagent-system-prompt", A_VALUE},
	{"--append-subagent-system-prompt-file", A_VALUE},
	{"--append-system-prompt", A_VALUE},
	{"--append-system-prompt-file", A_VALUE},
	{"--attach-serve", A_VALUE},
	{"--autocompact", A_VALUE},
	{"--betas", A_VARIADIC},
	{"--channels", A_VARIADIC},
	{"--client-data-url", A_VALUE},
	{"--cloud", A_OPTIONAL},
	{"--correlation-id", A_VALUE},
	{"--dangerously-load-development-channels", A_VARIADIC},
	{"--debug", A_OPTIONAL},
	{"--debug-file", A_VALUE},
	{"--deep-link-cwd-b64", A_VALUE},
	{"--deep-link-last-fetch", A_VALUE},
	{"--deep-link-repo", A_VALUE},
	{"--disallowed-tools", A_VARIADIC},
	{"--disallowedTools", A_VARIADIC},
	{"--effort", A_VALUE},
	{"--environment", A_VALUE},
	{"--exec", A_VALUE},
	{"--fallback-model", A_VALUE},
	{"--fast-mode", A_VALUE},
	{"--file", A_VARIADIC},
	{"--forward-home-settings", A_VALUE},
	{"--from-pr", A_OPTIONAL},
	{"--handle-uri", A_VALUE},
	{"--inherit-permission-mode", A_VALUE},
	{"--initialize-fields", A_VALUE},
	{"--input-format", A_VALUE},
	{"--json-schema", A_VALUE},
	{"--lead-verify-key", A_VALUE},
	{"--managed-settings", A_VALUE},
	{"--max-budget-usd", A_VALUE},
	{"--max-thinking-tokens", A_VALUE},
	{"--max-turns", A_VALUE},
	{"--mcp-config", A_VARIADIC},
	{"--messaging-socket-path", A_VALUE},
	{"--metadata", A_VALUE},
	{"--model", A_VALUE},
	{"--name", A_VALUE},
	{"--on-branch", A_VALUE},
	{"--output-format", A_VALUE},
	{"--parent-session-id", A_VALUE},
	{"--permission-mode", A_VALUE},
	{"--permission-prompt-tool", A_VALUE},
	{"--permission-prompts", A_VALUE},
	{"--plan-mode-instructions", A_VALUE},
	{"--plugin-dir", A_VALUE},
	{"--plugin-dir-no-mcp", A_VALUE},
	{"--plugin-url", A_VALUE},
	{"--pool", A_VALUE},
	{"--prefill", A_VALUE},
	{"--prefill-b64", A_VALUE},
	{"--proactivity", A_VALUE},
	{"--project", A_OPTIONAL},
	{"--project-config-root", A_VALUE},
	{"--prompt-suggestions", A_OPTIONAL},
	{"--rc", A_OPTIONAL},
	{"--ref", A_VALUE},
	{"--remote", A_OPTIONAL},
	{"--remote-control", A_OPTIONAL},
	{"--remote-control-session-name-prefix", A_VALUE},
	{"--resume", A_OPTIONAL},
	{"--resume-drops-turn", A_VALUE},
	{"--resume-session-at", A_VALUE},
	{"--rewind-files", A_VALUE},
	{"--routine", A_VALUE},
	{"--runner-declares", A_VALUE},
	{"--sdk-url", A_VALUE},
	{"--session-began-as-copy", A_VALUE},
	{"--session-id", A_VALUE},
	{"--setting-sources", A_VALUE},
	{"--settings", A_VALUE},
	{"--system-prompt", A_VALUE},
	{"--system-prompt-file", A_VALUE},
	{"--system-prompt-snapshot", A_VALUE},
	{"--task-budget", A_VALUE},
	{"--team-name", A_VALUE},
	{"--teammate-mode", A_VALUE},
	{"--teleport", A_OPTIONAL},
	{"--thinking", A_VALUE},
	{"--thinking-display", A_VALUE},
	{"--tools", A_VARIADIC},
	{"--watch-artifact", A_VALUE},
	{"--watch-artifact-no-autoreact", A_VALUE},
	{"--workload", A_VALUE},
	{"--worktree", A_OPTIONAL},
	{"-d", A_OPTIONAL},
	{"-m", A_VALUE},
	{"-n", A_VALUE},
	{"-r", A_OPTIONAL},
	{"-w", A_OPTIONAL},
	{NULL, A_FLAG},
};

static const struct option_spec *find_option(const char *word, size_t len)
{
	for (const struct option_spec *o = options; o->name; o++)
		if (strlen(o->name) == len && memcmp(o->name, word, len) == 0)
			return o;
	return NULL;
}

int agent_option_arity(const char *option)
{
	const struct option_spec *o = find_option(option, strlen(option));
	if (!o)
		return -1;
	return o->arity == A_FLAG ? 0 : o->arity == A_VARIADIC ? 2 : 1;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
	size_t b = strlen(suffix);
	return len >= b && memcmp(s + len - b, suffix, b) == 0;
}

static bool name_in_match(const char *name, size_t len, const char *match)
{
	const char *p = match;
	if (len == 0)
		return false;
	while (*p) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);
		if (n == len && memcmp(p, name, n) == 0)
			return true;
		if (!colon)
			break;
		p = colon + 1;
	}
	return false;
}

/* A basename with the suffixes under which the same program is installed dropped. */
static bool program_in_match(const char *path, const char *match)
{
	static const char *const suffixes[] = {".exe", ".js", ".mjs", ".cjs"};
	const char *name = base_name(path);
	size_t len = strlen(name);
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++) {
		if (ends_with(name, len, suffixes[i]) && len > strlen(suffixes[i])) {
			len -= strlen(suffixes[i]);
			break;
		}
	}
	return name_in_match(name, len, match);
}

static bool is_interpreter(const char *path)
{
	const char *n = base_name(path);
	return strcmp(n, "node") == 0 || strcmp(n, "nodejs") == 0 || strcmp(n, "bun") == 0 ||
	       strcmp(n, "deno") == 0;
}

int agent_script_index(int argc, char *const argv[], const char *exe)
{
	const char *interp = exe && *exe && is_interpreter(exe) ? exe : NULL;
	if (!interp && argc >= 1 && argv[0] && is_interpreter(argv[0]))
		interp = argv[0];
	if (!interp)
		return 0;
	bool bun_or_deno =
		strcmp(base_name(interp), "bun") == 0 || strcmp(base_name(interp), "deno") == 0;
	/* Node's options that take the next word; -e/-p run code instead of a script. */
	static const char *const node_value[] = {
		"-r", "--require",    "--import",     "--loader", "--experimental-loader",
		"-C", "--conditions", "--input-type", "--title",  "--env-file",
		NULL};
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i];
		if (!w)
			return 0;
		if (bun_or_deno && strcmp(w, "run") == 0)
			continue;
		if (strcmp(w, "--") == 0)
			return i + 1 < argc ? i + 1 : 0;
		if (w[0] != '-')
			return i;
		if (strcmp(w, "-e") == 0 || strcmp(w, "--eval") == 0 || strcmp(w, "-p") == 0 ||
		    strcmp(w, "--print") == 0)
			return 0;
		for (const char *const *v = node_value; *v; v++)
			if (strcmp(w, *v) == 0) {
				i++;
				break;
			}
	}
	return 0;
}

/* Where Claude Code's native binary lives, whatever the command that ran it was called. */
static bool is_claude_code_binary(const char *exe)
{
	if (!exe || !*exe)
		return false;
	/* npm: .../@anthropic-ai/claude-code-linux-x64/claude, .../claude-code/bin/claude.exe;
	 * the Agent SDK's bundled copy: .../@anthropic-ai/claude-agent-sdk*\/...claude. */
	if ((strstr(exe, "/@anthropic-ai/claude-code") ||
	     strstr(exe, "/@anthropic-ai/claude-agent-sdk")) &&
	    (strcmp(base_name(exe), "claude") == 0 || strcmp(base_name(exe), "claude.exe") == 0))
		return true;
	/* The native installer: ~/.local/share/claude/versions/<version>. */
	const char *v = strstr(exe, "/claude/versions/");
	return v && !strchr(v + strlen("/claude/versions/"), '/');
}

static bool is_claude_code_script(const char *script)
{
	size_t len = script ? strlen(script) : 0;
	return len && (ends_with(script, len, "/claude-code/cli.js") ||
		       ends_with(script, len, "/claude-code/cli.mjs"));
}

/* The native binary is also a multi-call program: run under these names it is one of the
 * tools it bundles, not an agent: Claude Code 2.1 execs itself as "rg" for its file search, and
 * 2.1.332's Bash tool shell runs it as "ugrep" for grep and "bfs" for find. */
static bool is_bundled_tool(const char *argv0)
{
	static const char *const tools[] = {"rg", "ugrep", "bfs", NULL};
	const char *name = base_name(argv0);
	for (const char *const *t = tools; *t; t++)
		if (strcmp(name, *t) == 0)
			return true;
	return false;
}

bool agent_is_match(const struct agent_exec *x, const char *match)
{
	if (!match || x->argc < 1 || !x->argv || !x->argv[0])
		return false;
	if (program_in_match(x->argv[0], match))
		return true;
	bool interp = x->exe && *x->exe && is_interpreter(x->exe);
	if (x->exe && *x->exe && !interp && program_in_match(x->exe, match) &&
	    !is_bundled_tool(x->argv[0]))
		return true;
	if (x->script && *x->script && program_in_match(x->script, match))
		return true;
	if (!name_in_match(TBWRAP_DEFAULT_MATCH, strlen(TBWRAP_DEFAULT_MATCH), match))
		return false;
	return (!interp && is_claude_code_binary(x->exe) && !is_bundled_tool(x->argv[0])) ||
	       is_claude_code_script(x->script);
}

static bool copy_key(const char *src, size_t len, char *out, size_t outlen)
{
	if (len + 1 > outlen)
		return false;
	memcpy(out, src, len);
	out[len] = '\0';
	return true;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

bool agent_prompt_key(const char *prompt, size_t len, char *out, size_t outlen)
{
	size_t i = 0;
	while (i < len && is_space(prompt[i]))
		i++;
	if (i >= len || prompt[i] != '/')
		return copy_key(LEDGER_CATCH_ALL, strlen(LEDGER_CATCH_ALL), out, outlen);
	size_t start = i;
	while (i < len && !is_space(prompt[i]))
		i++;
	/* A key longer than a ledger name cannot have a budget: it shares the catch-all. */
	if (i - start >= LEDGER_NAME_LEN || i - start < 2)
		return copy_key(LEDGER_CATCH_ALL, strlen(LEDGER_CATCH_ALL), out, outlen);
	return copy_key(prompt + start, i - start, out, outlen);
}

/*
 * Walks argv like commander: calls back for every option (with its inline or consumed value,
 * NULL for none), wherever it stands (options may follow the prompt), up to "--". Returns the
 * index of the first operand (the prompt), or argc when there is none.
 */
typedef void option_fn(const char *name, size_t name_len, const char *value, void *ctx);

static int walk_argv(int argc, char *const argv[], int first, option_fn *fn, void *ctx)
{
	int operand = argc;
	for (int i = first; i < argc; i++) {
		const char *w = argv[i];
		if (!w)
			break;
		if (strcmp(w, "--") == 0) {
			if (operand == argc && i + 1 < argc)
				operand = i + 1;
			break;
		}
		if (w[0] != '-' || w[1] == '\0') {
			if (operand == argc)
				operand = i;
			continue;
		}
		const char *eq = w[1] == '-' ? strchr(w, '=') : NULL;
		size_t nlen = eq ? (size_t)(eq - w) : strlen(w);
		const struct option_spec *o = find_option(w, nlen);
		enum arity a = o ? o->arity : A_FLAG;
		const char *value = eq ? eq + 1 : NULL;
		if (!o && w[1] != '-' && w[2] != '\0') {
			/* A cluster of short options ("-pd", "-nnightly"): commander reads each
			 * letter; one that takes a value takes the rest of the word, or the next
			 * word when the rest is empty. */
			char one[3] = {'-', '\0', '\0'};
			for (const char *c = w + 1; *c; c++) {
				one[1] = *c;
				const struct option_spec *so = find_option(one, 2);
				if (!so || so->arity == A_FLAG)
					continue;
				if (c[1]) {
					value = c + 1;
				} else if (so->arity == A_VALUE && i + 1 < argc) {
					value = argv[++i];
				} else if (so->arity == A_OPTIONAL && i + 1 < argc &&
					   argv[i + 1][0] != '-') {
					value = argv[++i];
				}
				w = one;
				nlen = 2;
				break;
			}
			if (fn)
				fn(w, nlen, value, ctx);
			continue;
		}
		if (!eq && a == A_VALUE && i + 1 < argc)
			value = argv[++i];
		else if (!eq && a == A_OPTIONAL && i + 1 < argc && argv[i + 1][0] != '-')
			value = argv[++i];
		else if (a == A_VARIADIC)
			while (i + 1 < argc && argv[i + 1][0] != '-')
				value = argv[++i];
		if (fn)
			fn(w, nlen, value, ctx);
	}
	return operand;
}

bool agent_command_key(int argc, char *const argv[], int first, char *out, size_t outlen)
{
	int i = walk_argv(argc, argv, first, NULL, NULL);
	if (i >= argc) {
		if (outlen < 1)
			return false;
		out[0] = '\0';
		return true;
	}
	return agent_prompt_key(argv[i], strlen(argv[i]), out, outlen);
}

static bool is_name(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(name, want, len) == 0;
}

static void output_option(const char *name, size_t len, const char *value, void *ctx)
{
	struct agent_output *o = ctx;
	if (is_name(name, len, "--output-format")) {
		o->stdout_stream = value && strcmp(value, "stream-json") == 0;
		o->stdout_json = o->stdout_stream || (value && strcmp(value, "json") == 0);
	} else if (is_name(name, len, "--no-session-persistence"))
		o->no_persistence = true;
	else if (is_name(name, len, "-p") || is_name(name, len, "--print"))
		o->prints = true;
}

void agent_output_of(int argc, char *const argv[], int first, struct agent_output *out)
{
	memset(out, 0, sizeof(*out));
	walk_argv(argc, argv, first, output_option, out);
}

/* The JSON string value after "key": in one line of data, unescaped only as far as a prompt key
 * needs (a slash command is plain ASCII); returns its length or -1. */
static long json_string_after(const char *data, size_t len, const char *from, const char *key,
			      const char **start)
{
	const char *end = memchr(from, '\n', len - (size_t)(from - data));
	if (!end)
		end = data + len;
	const char *k = memmem(from, (size_t)(end - from), key, strlen(key));
	if (!k)
		return -1;
	const char *v = k + strlen(key);
	const char *q = v;
	while (q < end && *q != '"' && *q != '\\')
		q++;
	*start = v;
	return (long)(q - v);
}

bool agent_prompt_from_transcript(const char *data, size_t len, char *out, size_t outlen)
{
	static const char enqueue[] = "\"operation\":\"enqueue\"";
	static const char tag[] = "<command-name>";
	const char *p = memmem(data, len, enqueue, sizeof(enqueue) - 1);
	if (p) {
		/* The content follows on the same line; search from the line's start. */
		const char *line = p;
		while (line > data && line[-1] != '\n')
			line--;
		const char *v;
		long n = json_string_after(data, len, line, "\"content\":\"", &v);
		if (n > 0)
			return agent_prompt_key(v, (size_t)n, out, outlen);
	}
	p = memmem(data, len, tag, sizeof(tag) - 1);
	if (p) {
		const char *v = p + sizeof(tag) - 1;
		const char *e = memchr(v, '<', len - (size_t)(v - data));
		if (e && e > v)
			return agent_prompt_key(v, (size_t)(e - v), out, outlen);
	}
	return false;
}

/* Start of the path component that ends just before end (a '/' precedes it), or NULL. */
static const char *component_before(const char *path, const char *end)
{
	const char *p = end;
	while (p > path && p[-1] != '/')
		p--;
	return p > path && p < end ? p : NULL;
}

bool agent_transcript_shape(const char *path, size_t len, size_t *projects_len)
{
	if (len < 7 || !ends_with(path, len, ".jsonl") || path[0] != '/')
		return false;
	const char *end = path + len;
	const char *file = component_before(path, end); /* <session>.jsonl or <agent>.jsonl */
	if (!file || file - path < 2)
		return false;
	const char *dir = component_before(path, file - 1); /* <project> or "subagents" */
	if (!dir)
		return false;
	if ((size_t)(file - 1 - dir) == 9 && memcmp(dir, "subagents", 9) == 0) {
		const char *session = component_before(path, dir - 1);
		if (!session)
			return false;
		dir = component_before(path, session - 1); /* <project> */
		if (!dir)
			return false;
	}
	const char *projects = component_before(path, dir - 1);
	if (!projects || (size_t)(dir - 1 - projects) != 8 || memcmp(projects, "projects", 8) != 0)
		return false;
	if (projects_len)
		*projects_len = (size_t)(dir - 1 - path);
	return true;
}
