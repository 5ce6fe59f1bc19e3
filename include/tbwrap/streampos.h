/*
 * Stream positions of a metered source, for the supervisor.
 *
 * The supervisor answers a notified write with CONTINUE, so it sees what a process asked to
 * write, not what was written: a restarted syscall, an EAGAIN retry (RWF_NOWAIT) or the rest of
 * a short write shows the same bytes again. Each source gets a position for what it is fed, and
 * the meter skips bytes before the position it has reached, so a re-sent write never counts
 * twice:
 *   - a regular file says where a write goes (its offset, or its size with O_APPEND); a write
 *     that starts before where this thread's last write ended, by no more than that write's
 *     length, re-sends bytes; one that starts later follows other writers of a shared file,
 *     and the agent's own stream has no gap there;
 *   - a pipe, socket or terminal has no offset: a retry comes from the same thread, from the
 *     same buffer, ends where the previous write ended and carries the same bytes.
 * Pure: no system calls; the caller reads the bytes and the file position.
 */
#ifndef TBWRAP_STREAMPOS_H
#define TBWRAP_STREAMPOS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bytes of a pipe write kept to recognise its retry; a longer write is not compared. */
#define STREAMPOS_KEEP ((size_t)1 << 20)

struct stream_pos {
	bool seekable;
	/* regular files: where this source's last write ended, and its length */
	bool file_seen;
	uint64_t file_next;
	size_t file_last_len;
	/* last write, to recognise a retry on a pipe */
	pid_t last_tid;
	uint64_t last_addr;
	size_t last_len;
	uint64_t last_start;
	char *last_data;
	size_t last_cap;
};

/* One notified write, as the supervisor saw it. */
struct stream_write {
	pid_t tid;
	uint64_t addr;	 /* of its one buffer; 0 for a vector of several */
	size_t len;	 /* bytes asked to be written */
	bool has_offset; /* seekable: offset is where the bytes go */
	uint64_t offset;
	const char *data; /* the bytes read from the writer, from the start */
	size_t have;	  /* how many of them (may be fewer than len) */
};

/* Where in the source's stream the write's bytes start, given that the stream has taken in end
 * bytes; METER_POS_APPEND when they simply follow. */
uint64_t streampos_locate(struct stream_pos *p, const struct stream_write *w, uint64_t end);

/* Records the write (after it was fed) as the one a retry would repeat; start is where its bytes
 * began in the stream. */
void streampos_remember(struct stream_pos *p, const struct stream_write *w, uint64_t start);

void streampos_free(struct stream_pos *p);

#endif
