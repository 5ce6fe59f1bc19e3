/*
 * The budget thresholds, decided in one place: which of 70 %, 90 % and "exceeded" a use has
 * crossed (the warnings of both modes, said once each) and which colour band it is in (the bars:
 * green below 70 %, yellow from 70 % to 90 %, red above 90 %). Pure arithmetic on 128 bits, so a
 * bar or a warning never claims a threshold before the budget is really there, and no count,
 * however large, wraps round.
 */
#ifndef TBWRAP_THRESHOLD_H
#define TBWRAP_THRESHOLD_H

#include <stdint.h>

enum {
	THRESHOLD_70 = 1u << 0,	      /* used >= 70 % of the limit */
	THRESHOLD_90 = 1u << 1,	      /* used >= 90 % */
	THRESHOLD_EXCEEDED = 1u << 2, /* used > limit: what block mode stops for */
	THRESHOLD_ALL = (1u << 3) - 1,
};

enum threshold_band {
	THRESHOLD_GREEN,  /* below 70 % */
	THRESHOLD_YELLOW, /* 70 % to 90 % inclusive */
	THRESHOLD_RED,	  /* above 90 % */
};

/* The thresholds (THRESHOLD_* bits) that used has crossed of limit; 0 when limit is 0. */
unsigned threshold_crossed(uint64_t used, uint64_t limit);

/* The percentage a single THRESHOLD_70 or THRESHOLD_90 bit stands for (70, 90); 100 for
 * THRESHOLD_EXCEEDED. */
unsigned threshold_percent(unsigned bit);

/* The colour band of used against limit (limit > 0: a zero budget is shown apart). */
enum threshold_band threshold_band(uint64_t used, uint64_t limit);

#endif
