/*
 * Stream positions (launcher/streampos.c): the supervisor sees what a process asked to write, so a
 * restarted, retried or partial write shows it bytes it has already metered. These cases drive
 * streampos_locate/streampos_remember the way launcher/notify.c does (locate, then remember the
 * write at the position it was fed at, while the stream's end advances by what was fed) and pin
 * the position of every write: a re-send maps onto the stream bytes it repeats, anything else
 * simply follows (METER_POS_APPEND).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tbwrap/meter.h"
#include "tbwrap/streampos.h"

#define APPEND METER_POS_APPEND

/* One source as the supervisor keeps it: its positions and how much of it the meter took in. */
struct source {
	struct stream_pos pos;
	uint64_t end;
};

/* Locates w, remembers it and advances the stream's end the way meter_feed would: bytes fed at
 * a position before end are skipped, the rest extend the stream. Returns the position. */
static uint64_t feed(struct source *s, const struct stream_write *w)
{
	uint64_t at = streampos_locate(&s->pos, w, s->end);
	uint64_t start = at == APPEND ? s->end : at;

	streampos_remember(&s->pos, w, start);
	if (start + w->len > s->end)
		s->end = start + w->len;
	return at;
}

static struct stream_write file_write(pid_t tid, uint64_t offset, size_t len)
{
	struct stream_write w = {
		.tid = tid, .addr = 0x1000, .len = len, .has_offset = true, .offset = offset};
	return w;
}

static struct stream_write pipe_write(pid_t tid, uint64_t addr, const char *data)
{
	size_t len = strlen(data);
	struct stream_write w = {.tid = tid, .addr = addr, .len = len, .data = data, .have = len};
	return w;
}

/* ---- regular files ---- */

/* A short write: 100 bytes asked for at offset 1000, 60 written; the thread re-sends the last
 * 40 at 1060. They are stream bytes 60..99 of what was fed, not new ones. */
static void test_file_resend_of_short_write_tail(void **state)
{
	struct source s = {.pos = {.seekable = true}};
	struct stream_write w = file_write(7, 1000, 100);

	(void)state;
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 100);
	w = file_write(7, 1060, 40);
	assert_int_equal(feed(&s, &w), 60);
	assert_int_equal(s.end, 100);
	/* Then the next write follows at 1100: new bytes. */
	w = file_write(7, 1100, 30);
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 130);
	/* A restarted write at the same offset re-sends all of it. */
	w = file_write(7, 1100, 30);
	assert_int_equal(feed(&s, &w), 100);
	assert_int_equal(s.end, 130);
	streampos_free(&s.pos);
}

/* Another thread appending to the same file writes at a later offset (or at one that the
 * first write has not grown the file to yet): its bytes are new. */
static void test_file_other_thread_appends(void **state)
{
	struct source s = {.pos = {.seekable = true}};
	struct stream_write w = file_write(7, 1000, 100);

	(void)state;
	assert_true(feed(&s, &w) == APPEND);
	w = file_write(8, 1100, 50);
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 150);
	/* Thread 9 saw the size before thread 8's write grew it: an earlier offset, another
	 * thread, still new bytes. */
	w = file_write(9, 1120, 20);
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 170);
	/* The same thread at a later offset (after a seek, or another writer in between). */
	w = file_write(9, 5000, 10);
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 180);
	streampos_free(&s.pos);
}

/* Back by more than the last write's length: not a re-send of it (a seek back, a rewrite). */
static void test_file_earlier_by_more_than_length(void **state)
{
	struct source s = {.pos = {.seekable = true}};
	struct stream_write w = file_write(7, 1000, 100);

	(void)state;
	assert_true(feed(&s, &w) == APPEND);
	w = file_write(7, 899, 50); /* 201 back, the last write was 100 long */
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 150);
	/* Exactly its length back is a re-send (the boundary). */
	w = file_write(7, 899, 50);
	assert_int_equal(feed(&s, &w), 100);
	/* One byte more than its length back is not. */
	w = file_write(7, 1000, 10);
	assert_true(feed(&s, &w) == APPEND);
	w = file_write(7, 999, 10);
	assert_true(feed(&s, &w) == APPEND);
	streampos_free(&s.pos);
}

/* Never a position before the stream's start: a re-send of more than was fed is new bytes. */
static void test_file_resend_beyond_stream_start(void **state)
{
	struct source s = {.pos = {.seekable = true}};
	struct stream_write w = file_write(7, 1000, 100);

	(void)state;
	/* The meter took in only 20 bytes of this source so far (the caller's end). */
	assert_true(streampos_locate(&s.pos, &w, 20) == APPEND);
	streampos_remember(&s.pos, &w, 20);
	w = file_write(7, 1050, 50);
	assert_true(streampos_locate(&s.pos, &w, 20) == APPEND);
	streampos_free(&s.pos);
}

/* A seekable source whose offset could not be read: the bytes follow, and nothing is learnt. */
static void test_file_without_offset(void **state)
{
	struct source s = {.pos = {.seekable = true}};
	struct stream_write w = file_write(7, 1000, 100);

	(void)state;
	assert_true(feed(&s, &w) == APPEND);
	w.has_offset = false;
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 200);
	/* The last write with an offset is still the one a re-send is compared with. */
	w = file_write(7, 1050, 50);
	assert_int_equal(feed(&s, &w), 150);
	streampos_free(&s.pos);
}

/* ---- pipes, sockets, terminals ---- */

static void test_pipe_retry_same_bytes(void **state)
{
	struct source s = {0};
	struct stream_write w = pipe_write(5, 0x4000, "0123456789");

	(void)state;
	assert_int_equal(s.end, 0);
	s.end = 40; /* other bytes came first */
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 50);
	/* EAGAIN or a restart: the whole write again. */
	assert_int_equal(feed(&s, &w), 40);
	assert_int_equal(s.end, 50);
	/* The rest of a short write: the tail, from the same buffer. */
	w = pipe_write(5, 0x4006, "6789");
	assert_int_equal(feed(&s, &w), 46);
	/* And the tail of that. */
	w = pipe_write(5, 0x4008, "89");
	assert_int_equal(feed(&s, &w), 48);
	assert_int_equal(s.end, 50);
	/* The next write, even with the same bytes from another buffer, is new. */
	w = pipe_write(5, 0x9000, "89");
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 52);
	streampos_free(&s.pos);
}

static void test_pipe_different_bytes(void **state)
{
	struct source s = {0};
	struct stream_write w = pipe_write(5, 0x4000, "0123456789");

	(void)state;
	assert_true(feed(&s, &w) == APPEND);
	/* Same thread, same buffer, same end: but the program refilled the buffer. */
	w = pipe_write(5, 0x4000, "0123456780");
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 20);
	w = pipe_write(5, 0x4006, "678X");
	assert_true(feed(&s, &w) == APPEND);
	streampos_free(&s.pos);
}

static void test_pipe_other_thread(void **state)
{
	struct source s = {0};
	struct stream_write w = pipe_write(5, 0x4000, "0123456789");

	(void)state;
	assert_true(feed(&s, &w) == APPEND);
	w.tid = 6;
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 20);
	/* The other thread's write is now the last one: its own retry matches it. */
	assert_int_equal(feed(&s, &w), 10);
	streampos_free(&s.pos);
}

static void test_pipe_partial_read(void **state)
{
	struct source s = {0};
	struct stream_write w = pipe_write(5, 0x4000, "0123456789");

	(void)state;
	assert_true(feed(&s, &w) == APPEND);
	/* Only 3 of the 10 bytes could be read from the writer: they cannot be compared. */
	w.have = 3;
	assert_true(streampos_locate(&s.pos, &w, s.end) == APPEND);
	/* Nor remembered: the next full retry of it is not matched against it. */
	streampos_remember(&s.pos, &w, s.end);
	assert_int_equal(s.pos.last_len, 0);
	w.have = w.len;
	assert_true(streampos_locate(&s.pos, &w, s.end) == APPEND);
	streampos_free(&s.pos);
}

/* Where the buffer is: it must end where the last one ended, and start inside it. */
static void test_pipe_addresses(void **state)
{
	struct source s = {0};
	struct stream_write w = pipe_write(5, 0x4000, "0123456789");

	(void)state;
	assert_true(feed(&s, &w) == APPEND);
	/* Same bytes as the head of the last write, ending earlier. */
	w = pipe_write(5, 0x4000, "01234");
	assert_true(streampos_locate(&s.pos, &w, s.end) == APPEND);
	/* Ends at the same place but starts before the last buffer. */
	w = pipe_write(5, 0x3ffe, "xx0123456789");
	assert_true(streampos_locate(&s.pos, &w, s.end) == APPEND);
	/* The same bytes one address later. */
	w = pipe_write(5, 0x4001, "123456789");
	assert_int_equal(streampos_locate(&s.pos, &w, s.end), 1);
	w = pipe_write(5, 0x4002, "123456789");
	assert_true(streampos_locate(&s.pos, &w, s.end) == APPEND);
	streampos_free(&s.pos);
}

/* A write of several buffers (writev) has no one address: never matched, never a match. */
static void test_pipe_vector_writes(void **state)
{
	struct source s = {0};
	struct stream_write w = pipe_write(5, 0, "0123456789");

	(void)state;
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.pos.last_len, 0);
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 20);
	/* A single buffer after a vector does not match the vector's bytes. */
	w = pipe_write(5, 0x4000, "0123456789");
	assert_true(feed(&s, &w) == APPEND);
	/* A vector after a single buffer does not match it either. */
	w = pipe_write(5, 0, "0123456789");
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 40);
	streampos_free(&s.pos);
}

/* At most STREAMPOS_KEEP bytes are kept: a write of exactly that many is recognised, a longer
 * one is not kept (nor compared) at all. */
static void test_remember_keeps_at_most_keep(void **state)
{
	struct source s = {0};
	char *big = malloc(STREAMPOS_KEEP + 1);

	(void)state;
	assert_non_null(big);
	for (size_t i = 0; i < STREAMPOS_KEEP + 1; i++)
		big[i] = (char)('a' + i % 26);
	struct stream_write w = {.tid = 5,
				 .addr = 0x100000,
				 .len = STREAMPOS_KEEP,
				 .data = big,
				 .have = STREAMPOS_KEEP};
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.pos.last_len, STREAMPOS_KEEP);
	assert_int_equal(s.pos.last_cap, STREAMPOS_KEEP);
	assert_memory_equal(s.pos.last_data, big, STREAMPOS_KEEP);
	assert_int_equal(feed(&s, &w), 0);
	/* A tail of it. */
	w.addr += 1000;
	w.data = big + 1000;
	w.len = w.have = STREAMPOS_KEEP - 1000;
	assert_int_equal(feed(&s, &w), 1000);

	/* One byte more: not kept, the buffer not grown, its retry not recognised. */
	w = (struct stream_write){.tid = 5,
				  .addr = 0x800000,
				  .len = STREAMPOS_KEEP + 1,
				  .data = big,
				  .have = STREAMPOS_KEEP + 1};
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.pos.last_len, 0);
	assert_int_equal(s.pos.last_cap, STREAMPOS_KEEP);
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.end, 2 * (uint64_t)STREAMPOS_KEEP + 2 + STREAMPOS_KEEP);

	/* A smaller write afterwards reuses the buffer. */
	w = pipe_write(5, 0x4000, "small");
	assert_true(feed(&s, &w) == APPEND);
	assert_int_equal(s.pos.last_len, 5);
	assert_int_equal(s.pos.last_cap, STREAMPOS_KEEP);
	assert_memory_equal(s.pos.last_data, "small", 5);
	streampos_free(&s.pos);
	assert_null(s.pos.last_data);
	assert_int_equal(s.pos.last_cap, 0);
	free(big);
}

/* A seekable source keeps no pipe state: remember leaves the bytes alone. */
static void test_remember_seekable_keeps_no_bytes(void **state)
{
	struct source s = {.pos = {.seekable = true}};
	struct stream_write w = file_write(7, 0, 10);

	(void)state;
	w.data = "0123456789";
	w.have = 10;
	assert_true(feed(&s, &w) == APPEND);
	assert_null(s.pos.last_data);
	assert_int_equal(s.pos.last_len, 0);
	assert_int_equal(s.pos.last_cap, 0);
	streampos_free(&s.pos);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_file_resend_of_short_write_tail),
		cmocka_unit_test(test_file_other_thread_appends),
		cmocka_unit_test(test_file_earlier_by_more_than_length),
		cmocka_unit_test(test_file_resend_beyond_stream_start),
		cmocka_unit_test(test_file_without_offset),
		cmocka_unit_test(test_pipe_retry_same_bytes),
		cmocka_unit_test(test_pipe_different_bytes),
		cmocka_unit_test(test_pipe_other_thread),
		cmocka_unit_test(test_pipe_partial_read),
		cmocka_unit_test(test_pipe_addresses),
		cmocka_unit_test(test_pipe_vector_writes),
		cmocka_unit_test(test_remember_keeps_at_most_keep),
		cmocka_unit_test(test_remember_seekable_keeps_no_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
