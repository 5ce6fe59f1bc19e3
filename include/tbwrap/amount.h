/*
 * Amounts in the two units a budget can be in: tokens (as --count counts them) and pico-USD
 * (as tbwrap prices them, launcher/prices.c). A reservation, a prediction or an estimate is held
 * in both at once, so that an agent is held to whichever budget it reaches first.
 */
#ifndef TBWRAP_AMOUNT_H
#define TBWRAP_AMOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "tbwrap/sat.h"

enum amount_unit { AMOUNT_TOKENS = 0, AMOUNT_USD = 1, AMOUNT_NUNITS };

struct amount {
	uint64_t v[AMOUNT_NUNITS];
};

/* a + b, saturating. */
static inline struct amount amount_add(struct amount a, struct amount b)
{
	for (int u = 0; u < AMOUNT_NUNITS; u++)
		a.v[u] = sat_add(a.v[u], b.v[u]);
	return a;
}

/* a - b, each unit at least 0. */
static inline struct amount amount_sub(struct amount a, struct amount b)
{
	for (int u = 0; u < AMOUNT_NUNITS; u++)
		a.v[u] = a.v[u] > b.v[u] ? a.v[u] - b.v[u] : 0;
	return a;
}

/* Each unit the larger of the two. */
static inline struct amount amount_max(struct amount a, struct amount b)
{
	for (int u = 0; u < AMOUNT_NUNITS; u++)
		if (b.v[u] > a.v[u])
			a.v[u] = b.v[u];
	return a;
}

static inline bool amount_is_zero(struct amount a)
{
	for (int u = 0; u < AMOUNT_NUNITS; u++)
		if (a.v[u])
			return false;
	return true;
}

#endif
