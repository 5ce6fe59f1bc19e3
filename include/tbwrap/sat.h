/*
 * Saturating arithmetic on counts and money: a budget must stick at "exhausted", never wrap round
 * to "plenty", whatever a corrupt or hostile count adds up to.
 */
#ifndef TBWRAP_SAT_H
#define TBWRAP_SAT_H

#include <stdint.h>

static inline uint64_t sat_add(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static inline uint64_t sat_mul(uint64_t a, uint64_t b)
{
	uint64_t r;
	return __builtin_mul_overflow(a, b, &r) ? UINT64_MAX : r;
}

#endif
