/*
 * Stream positions: how a re-sent write is told from a new one (include/tbwrap/streampos.h).
 */
#include "tbwrap/streampos.h"

#include <stdlib.h>
#include <string.h>

#include "tbwrap/meter.h"

static uint64_t locate_file(struct stream_pos *p, const struct stream_write *w, uint64_t end)
{
	uint64_t at = w->offset, pos = METER_POS_APPEND;
	uint64_t back = p->file_next - at;
	/* Only the same thread re-sends (the rest of its own short write): another thread
	 * appending at the same moment sees a size the first write has not grown yet. */
	if (p->file_seen && p->last_tid == w->tid && at < p->file_next &&
	    back <= p->file_last_len && back <= end)
		pos = end - back;
	p->file_seen = true;
	p->file_next = at + w->len;
	p->file_last_len = w->len;
	p->last_tid = w->tid;
	return pos;
}

uint64_t streampos_locate(struct stream_pos *p, const struct stream_write *w, uint64_t end)
{
	if (p->seekable)
		return w->has_offset ? locate_file(p, w, end) : METER_POS_APPEND;
	/* A retry: the same thread, a buffer that ends where the last one ended, the same bytes. */
	if (p->last_tid == w->tid && p->last_len && w->addr && w->addr >= p->last_addr &&
	    w->addr + w->len == p->last_addr + p->last_len && p->last_data && w->have == w->len) {
		size_t skip = (size_t)(w->addr - p->last_addr);
		if (memcmp(w->data, p->last_data + skip, w->len) == 0)
			return p->last_start + skip;
	}
	return METER_POS_APPEND;
}

void streampos_remember(struct stream_pos *p, const struct stream_write *w, uint64_t start)
{
	if (p->seekable)
		return; /* locate_file keeps what files need */
	p->last_tid = w->tid;
	p->last_addr = w->addr;
	p->last_len = w->len;
	p->last_start = start;
	if (!w->addr || w->len > STREAMPOS_KEEP || w->have != w->len) {
		p->last_len = 0;
		return;
	}
	if (p->last_cap < w->len) {
		char *n = realloc(p->last_data, w->len);
		if (!n) {
			p->last_len = 0;
			return;
		}
		p->last_data = n;
		p->last_cap = w->len;
	}
	memcpy(p->last_data, w->data, w->len);
}

void streampos_free(struct stream_pos *p)
{
	free(p->last_data);
	memset(p, 0, sizeof(*p));
}
