// A small Claude Agent SDK program, as a user writes one: it runs one /test session in the
// project directory with the Bash tool allowed, and prints each message it receives as a JSON
// line on stdout (the result message last). tests/e2e/test_tbwrap_sdk.sh runs it under tbwrap.
//
//   node agent.mjs PROJECT_DIR [inherit|no-preload]
//
// inherit     (default) the SDK's default environment for the CLI: this process's own
// no-preload  options.env = this process's environment without LD_PRELOAD, as a program that
//             builds a clean environment for its agent does
//
// The SDK is imported by its package name: the test puts a node_modules next to a copy of this
// file (the SDK that scripts/ensure-claude --sdk installs). Exit status 0 when the session's
// result is a success, 1 otherwise.
import { query } from '@anthropic-ai/claude-agent-sdk';

const [project, envMode = 'inherit'] = process.argv.slice(2);
if (!project || !['inherit', 'no-preload'].includes(envMode)) {
  console.error('usage: node agent.mjs PROJECT_DIR [inherit|no-preload]');
  process.exit(2);
}

const options = { cwd: project, allowedTools: ['Bash'] };
if (envMode === 'no-preload') {
  const env = { ...process.env };
  delete env.LD_PRELOAD;
  options.env = env;
}

let result = null;
for await (const message of query({ prompt: '/test', options })) {
  console.log(JSON.stringify(message));
  if (message.type === 'result') result = message;
}
process.exit(result && result.subtype === 'success' ? 0 : 1);
