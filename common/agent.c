/*
 * Agent recognition and prompt keys. The rules follow how Claude Code's own command line parser
 * (commander) reads argv: options that take one value consume the next word, variadic options
 * (--allowedTools A B ...) consume words up to the next option, and the prompt is the first word
 * left over. Getting this wrong would put an agent's usage under the wrong budget, so the option
 * tables below are the ones of the pinned CLI version.
 */
#include "tbwrap/agent.h"

#include <string.h>

#include "tbwrap/ledger.h"

static const char *const value_opts[] = {
	"--output-format",
	"--input-format",
	"--json-schema",
	"--max-budget-usd",
	"--max-turns",
	"--system-prompt",
	"--system-prompt-file",
	"--append-system-prompt",
	"--append-system-prompt-file",
	"--permission-mode",
	"--model",
	"--agent",
	"--fallback-model",
	"--settings",
	"--session-id",
	"--agents",
	"--setting-sources",
	"--permission-prompt-tool",
	"--plugin-dir",
	"--debug-file",
	"--resume",
	"-r",
	"--from-pr",
	"--max-thinking-tokens",
	NULL,
};

static const char *const variadic_opts[] = {
	"--allowedTools",
	"--allowed-tools",
	"--disallowedTools",
	"--disallowed-tools",
	"--tools",
	"--mcp-config",
	"--add-dir",
	"--betas",
	"--file",
	NULL,
};

static bool in_list(const char *const *list, const char *word)
{
	for (; *list; list++)
		if (strcmp(*list, word) == 0)
			return true;
	return false;
}

static const char *base_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	return slash ? slash + 1 : path;
}

static bool name_in_match(const char *name, size_t len, const char *match)
{
	const char *p = match;
	while (*p) {
		const char *colon = strchr(p, ':');
		size_t n = colon ? (size_t)(colon - p) : strlen(p);
		if (n == len && n > 0 && memcmp(p, name, n) == 0)
			return true;
		if (!colon)
			break;
		p = colon + 1;
	}
	return false;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

bool agent_is_match(int argc, char *const argv[], const char *match)
{
	if (argc < 1 || !argv[0] || !match)
		return false;
	const char *name = base_name(argv[0]);
	size_t len = strlen(name);
	/* The npm package's bin/claude.exe is the native binary under another name. */
	if (len > 4 && strcmp(name + len - 4, ".exe") == 0)
		len -= 4;
	if (name_in_match(name, len, match))
		return true;
	/* The JavaScript build run by an interpreter: argv[0] is the interpreter. */
	if (argc >= 2 && argv[1] &&
	    (strcmp(name, "node") == 0 || strcmp(name, "nodejs") == 0 || strcmp(name, "bun") == 0 ||
	     strcmp(name, "deno") == 0) &&
	    (ends_with(argv[1], "claude-code/cli.js") || ends_with(argv[1], "claude-code/cli.mjs")))
		return name_in_match("claude", 6, match);
	return false;
}

static bool copy_key(const char *src, size_t len, char *out, size_t outlen)
{
	if (len + 1 > outlen)
		return false;
	memcpy(out, src, len);
	out[len] = '\0';
	return true;
}

bool agent_prompt_key(const char *prompt, size_t len, char *out, size_t outlen)
{
	size_t i = 0;
	while (i < len &&
	       (prompt[i] == ' ' || prompt[i] == '\t' || prompt[i] == '\n' || prompt[i] == '\r'))
		i++;
	if (i >= len || prompt[i] != '/')
		return copy_key(LEDGER_CATCH_ALL, strlen(LEDGER_CATCH_ALL), out, outlen);
	size_t start = i;
	while (i < len && prompt[i] != ' ' && prompt[i] != '\t' && prompt[i] != '\n' &&
	       prompt[i] != '\r')
		i++;
	/* A key longer than a ledger name cannot have a budget: it shares the catch-all. */
	if (i - start >= LEDGER_NAME_LEN || i - start < 2)
		return copy_key(LEDGER_CATCH_ALL, strlen(LEDGER_CATCH_ALL), out, outlen);
	return copy_key(prompt + start, i - start, out, outlen);
}

bool agent_command_key(int argc, char *const argv[], char *out, size_t outlen)
{
	int i = 1;
	/* The JavaScript build: skip the interpreter's script argument. */
	if (argc >= 2 && argv[1] && (ends_with(argv[1], "cli.js") || ends_with(argv[1], "cli.mjs")))
		i = 2;
	for (; i < argc; i++) {
		const char *w = argv[i];
		if (strcmp(w, "--") == 0) {
			i++;
			break;
		}
		if (w[0] != '-' || w[1] == '\0')
			break;
		if (strchr(w, '='))
			continue;
		if (in_list(value_opts, w)) {
			i++;
			continue;
		}
		if (in_list(variadic_opts, w)) {
			while (i + 1 < argc && argv[i + 1][0] != '-')
				i++;
			continue;
		}
	}
	if (i >= argc) {
		if (outlen < 1)
			return false;
		out[0] = '\0';
		return true;
	}
	return agent_prompt_key(argv[i], strlen(argv[i]), out, outlen);
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

bool agent_stdout_is_json(int argc, char *const argv[])
{
	static const char opt[] = "--output-format";
	for (int i = 1; i < argc; i++) {
		const char *w = argv[i], *v = NULL;
		if (strcmp(w, "--") == 0)
			break;
		if (strcmp(w, opt) == 0 && i + 1 < argc)
			v = argv[i + 1];
		else if (strncmp(w, opt, sizeof(opt) - 1) == 0 && w[sizeof(opt) - 1] == '=')
			v = w + sizeof(opt);
		if (v)
			return strcmp(v, "json") == 0 || strcmp(v, "stream-json") == 0;
	}
	return false;
}
