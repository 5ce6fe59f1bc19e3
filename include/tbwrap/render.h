/*
 * Human-readable views of a ledger: token counts with K/M suffixes, progress bars, the budget
 * report (`tbwrap status`, end of a run) and the one-line live display.
 *
 * Pure functions of the ledger contents: they read the counters with atomic loads (the ledger
 * may be changing underneath) and never write to it, so a read-only mapping is enough.
 */
#ifndef TBWRAP_RENDER_H
#define TBWRAP_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tbwrap/ledger.h"
#include "tbwrap/log.h"

#define RENDER_BAR_WIDTH 20
#define RENDER_BAR_WIDTH_MAX 200

#define RENDER_GREEN "\033[92m"
#define RENDER_YELLOW "\033[93m"
#define RENDER_RED "\033[91m"
#define RENDER_RESET "\033[0m"

struct render_opts {
	bool color; /* ANSI colours */
	bool bars;  /* false with --disable-budget-visuals: numbers only */
	int width;  /* bar cells; <= 0 means RENDER_BAR_WIDTH, capped at RENDER_BAR_WIDTH_MAX */
};

/* Growable text (the reports are built in one): after a failed allocation every append is a
 * no-op and render_buf_finish gives NULL. Zero-initialised = empty. */
struct render_buf {
	char *p;
	size_t len, cap;
	bool failed;
};

void render_buf_printf(struct render_buf *b, const char *fmt, ...) TBWRAP_PRINTF(2, 3);

/* The text (malloc'd, "" when nothing was appended), or NULL when an allocation failed. */
char *render_buf_finish(struct render_buf *b);

/* The seed's _format_tokens: >= 1e6 "%.1fM", >= 1e3 "%.1fK", else the plain number. A value
 * that would round up to "1000.0K" is shown as "1.0M" instead. Always NUL-terminates. */
void render_tokens(char *buf, size_t len, uint64_t n);

/*
 * "[████████░░░░░░░░░░░░] 40%". The fill is capped at the full width; the percent is the real
 * one (130% when over), rounded down so that 100% appears only when the budget is used up.
 * Colour of the cells: green below 70 %, yellow from 70 % to 90 % inclusive, red above 90 %
 * (exact ratio, not the rounded percent). limit == LEDGER_NO_LIMIT gives "[NO BUDGET SET]";
 * limit == 0 (no agent may run) gives "[ZERO BUDGET]", red when coloured.
 * Returns the length of the whole text, like snprintf; it is truncated to fit len.
 */
size_t render_bar(char *buf, size_t len, uint64_t used, uint64_t limit,
		  const struct render_opts *o);

/*
 * The budget report, one line per item, ending with a newline:
 *
 *   BUDGET STATUS (block mode)
 *   Overall: [bar] 40% 20.0K/50.0K
 *   Command Budgets:
 *     /test     [bar] 80% 8.0K/10.0K, 2 agents, 1 stopped
 *     (prompt)  1.2K (no budget), 1 agent
 *   Agents:
 *     pid 1234  /test  exited 0  17.0K tokens (input 4000, output 200, cache creation 800,
 *               cache read 12000)  $0.036                                     <- one line
 *
 * Without bars the same lines lose only the bar. malloc'd; NULL when out of memory.
 */
char *render_report(const struct ledger_header *h, const struct render_opts *o);

/* One line (no newline) for the live display on stderr:
 * "tbwrap: overall [bar] 40% 20.0K/50.0K | /test [bar] 80% 8.0K/10.0K | 2 running".
 * Only budgeted commands appear. malloc'd; NULL when out of memory. */
char *render_status_line(const struct ledger_header *h, const struct render_opts *o);

/* Colour on fd: a terminal, and NO_COLOR unset or empty (https://no-color.org). */
bool render_use_color(int fd);

/* Name of an instance status ("running", "refused", "stopped", "exited"). Whether it was metered
 * is a flag of its own (LEDGER_F_UNMETERED). */
const char *render_status_name(uint32_t status);

/* Micro-USD as dollars with at least two decimals and no trailing zeros: "$0.036", "$1.50". */
void render_cost(char *buf, size_t len, uint64_t micro_usd);

/* Pico-USD the same way, rounded half up to the micro-dollar: "$0.018375". */
void render_usd(char *buf, size_t len, uint64_t pusd);

/* Tokens (render_tokens) or pico-USD (render_usd). */
void render_amount(char *buf, size_t len, enum amount_unit unit, uint64_t v);

#endif
