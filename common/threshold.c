/*
 * Threshold decisions (include/tbwrap/threshold.h). The warnings and the bars read the same
 * numbers with different edges on purpose: a warning fires at 70 % and at 90 % (">="), a bar
 * turns red only above 90 % (">"), so a bar at exactly 90 % is yellow while "at 90 %" has been
 * said. "Exceeded" is used > limit, never used == limit: a budget spent to its last token is
 * reached, not crossed, in block mode as in warn mode.
 */
#include "tbwrap/threshold.h"

static int cmp_pct(uint64_t used, uint64_t limit, unsigned pct)
{
	unsigned __int128 u = (unsigned __int128)used * 100;
	unsigned __int128 l = (unsigned __int128)limit * pct;
	return u < l ? -1 : u > l;
}

unsigned threshold_crossed(uint64_t used, uint64_t limit)
{
	unsigned bits = 0;
	if (limit == 0)
		return 0;
	if (cmp_pct(used, limit, 70) >= 0)
		bits |= THRESHOLD_70;
	if (cmp_pct(used, limit, 90) >= 0)
		bits |= THRESHOLD_90;
	if (used > limit)
		bits |= THRESHOLD_EXCEEDED;
	return bits;
}

unsigned threshold_percent(unsigned bit)
{
	switch (bit) {
	case THRESHOLD_70:
		return 70;
	case THRESHOLD_90:
		return 90;
	default:
		return 100;
	}
}

enum threshold_band threshold_band(uint64_t used, uint64_t limit)
{
	if (cmp_pct(used, limit, 90) > 0)
		return THRESHOLD_RED;
	if (cmp_pct(used, limit, 70) >= 0)
		return THRESHOLD_YELLOW;
	return THRESHOLD_GREEN;
}
