/*
 * Meter: line reassembly, classification and de-duplicated accounting of Claude Code's output.
 *
 * The hot path is a line that carries no usage at all (tool results, text, system lines): the
 * pass that finds its newline also looks for "usage" (SIMD, memchr/memmem without it), and a line
 * without the marker is dismissed there. Only candidate lines reach the JSON scanner below, which
 * validates the whole line (RFC 8259, UTF-8 included, no trailing bytes) while picking out the few
 * paths the meter needs, so a garbled, truncated or spliced line can never count. The scanner
 * allocates nothing: it works on the caller's bytes and keeps spans into them.
 *
 * Recursion is used only along the paths of interest, whose depth is fixed by the format (at most
 * root.event.message.usage); every other subtree is validated by an iterative loop with an explicit
 * bit stack, so nesting depth is bounded by METER_JSON_MAX_DEPTH and never by the C stack.
 */
#include "tbwrap/meter.h"
#include "tbwrap/sat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <immintrin.h>
#endif

/* Deeper nesting than this is rejected as not JSON. Claude Code's lines nest about ten deep; a
 * tool input can nest further, but not sensibly beyond a few hundred. */
#define METER_JSON_MAX_DEPTH 1024

/* Usage counts above 2^53 are not exact in the JavaScript that wrote them: such a value is not a
 * count but garbage, and must not reach a budget. */
#define METER_COUNT_MAX ((uint64_t)1 << 53)

/* First allocation of a line buffer; doubled on demand up to max_line. */
#define METER_BUF_INITIAL 4096

/* ------------------------------------------------------------------------------------------ */
/* Totals (saturating: include/tbwrap/sat.h) */

uint64_t meter_usage_total(const struct meter_usage *u, const uint32_t *weights)
{
	uint64_t sum = 0;
	for (int f = 0; f < METER_NFIELDS; f++)
		sum = sat_add(sum, sat_mul(u->n[f], weights ? weights[f] : 1));
	return sum;
}

uint64_t meter_hash_id(const char *id, size_t len)
{
	/* FNV-1a, then a murmur3 finaliser so that ids differing only at the end spread over all
	 * bits; 0 is reserved for "empty ring slot". */
	uint64_t h = 0xcbf29ce484222325ULL;
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)id[i];
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h ? h : 1;
}

/* ------------------------------------------------------------------------------------------ */
/* JSON scanner */

struct span {
	const char *s; /* raw string contents between the quotes, escapes not decoded */
	size_t len;
	bool is_set;
};

/* Index of a group's 1-hour cache writes, after the four fields. */
#define FIELD_CACHE_1H METER_NFIELDS

/* One usage object of interest. is_bad is sticky: one bad count spoils the whole object. */
struct group {
	uint64_t n[METER_NFIELDS + 1];
	bool is_set;
	bool is_bad;
};

/* One modelUsage entry of a result line. */
struct model_rec {
	struct span name;
	uint64_t n[METER_NFIELDS];
};

struct scan {
	const unsigned char *p;
	const unsigned char *end;
	struct span type, subtype, msg_id, ev_type, ev_msg_id, msg_model, ev_model;
	struct group msg_usage, ev_msg_usage, ev_usage, root_usage, model_sum;
	unsigned n_models;
	bool models_over;
	struct model_rec models[METER_RESULT_MODELS];
	bool has_cost;
	bool is_cost_bad;
	uint64_t cost_micro_usd;
	bool has_stop; /* message.stop_reason is a string: the line has the call's final usage */
};

/* Where in the document an object is; decides which keys matter. */
enum ctx {
	CTX_ROOT,
	CTX_MESSAGE,	 /* root.message */
	CTX_EVENT,	 /* root.event */
	CTX_EV_MESSAGE,	 /* root.event.message */
	CTX_MODEL_USAGE, /* root.modelUsage */
	CTX_USAGE,	 /* a usage object: snake_case fields, last value wins */
	CTX_MODEL,	 /* root.modelUsage.<model>: camelCase fields, summed over models */
	CTX_CACHE_SPLIT, /* usage.cache_creation: the 5-minute / 1-hour split */
};

/* Byte classes inside a JSON string. */
enum {
	SC_PLAIN = 0, /* printable ASCII other than '"' and '\\' */
	SC_QUOTE,
	SC_ESCAPE,
	SC_CTRL, /* < 0x20: must be escaped */
	SC_UTF8, /* start of a multi-byte sequence (validated separately) */
};

static const unsigned char string_class[256] = {
	[0 ... 0x1f] = SC_CTRL,
	['"'] = SC_QUOTE,
	['\\'] = SC_ESCAPE,
	[0x80 ... 0xff] = SC_UTF8,
};

static bool is_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Called between every two tokens; inlined, and most calls find no whitespace at all. */
static inline __attribute__((always_inline)) void skip_ws(struct scan *sc)
{
	while (sc->p < sc->end && is_ws(*sc->p))
		sc->p++;
}

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* Validates one UTF-8 sequence starting at p (a byte >= 0x80) per RFC 3629: no overlong forms,
 * no surrogates, nothing above U+10FFFF. Returns its length, 0 when invalid. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
	unsigned char c = p[0];
	size_t need;
	unsigned char lo = 0x80, hi = 0xbf;

	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0; /* overlong */
		else if (c == 0xed)
			hi = 0x9f; /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90; /* overlong */
		else if (c == 0xf4)
			hi = 0x8f; /* above U+10FFFF */
	} else {
		return 0;
	}
	if ((size_t)(end - p) <= need)
		return 0;
	if (p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i <= need; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return need + 1;
}

#ifdef __SSE2__
/* 1 SSE2, 2 AVX2; decided once. Every thread computes the same value: a benign relaxed race. */
static int simd_level(void)
{
	static int level;
	int lv = __atomic_load_n(&level, __ATOMIC_RELAXED);
	if (!lv) {
		__builtin_cpu_init();
		lv = __builtin_cpu_supports("avx2") ? 2 : 1;
		__atomic_store_n(&level, lv, __ATOMIC_RELAXED);
	}
	return lv;
}

__attribute__((target("avx2"))) static const unsigned char *
skip_plain_avx2(const unsigned char *p, const unsigned char *end)
{
	const __m256i quote = _mm256_set1_epi8('"'), backslash = _mm256_set1_epi8('\\');
	const __m256i space = _mm256_set1_epi8(0x20);
	while (end - p >= 32) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
		__m256i hit = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(v, quote),
							      _mm256_cmpeq_epi8(v, backslash)),
					      _mm256_cmpgt_epi8(space, v));
		unsigned mask = (unsigned)_mm256_movemask_epi8(hit);
		if (mask)
			return p + __builtin_ctz(mask);
		p += 32;
	}
	return p;
}
#endif

/* Returns the first byte at or after p that may end a run of plain string bytes ('"', '\\',
 * a control byte or a non-ASCII byte), or a point near end; the caller finishes byte by byte. */
static const unsigned char *skip_plain(const unsigned char *p, const unsigned char *end)
{
#ifdef __SSE2__
	const __m128i quote = _mm_set1_epi8('"'), backslash = _mm_set1_epi8('\\');
	const __m128i space = _mm_set1_epi8(0x20);
	while (end - p >= 16) {
		__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
		/* Signed compare: bytes >= 0x80 are negative, so one test catches them and the
		 * control bytes together. */
		__m128i hit = _mm_or_si128(
			_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, backslash)),
			_mm_cmplt_epi8(v, space));
		unsigned mask = (unsigned)_mm_movemask_epi8(hit);
		if (mask)
			return p + __builtin_ctz(mask);
		p += 16;
		/* Past the first block the string is a long one (text, tool input): wider blocks
		 * pay for the call. */
		if (simd_level() == 2)
			p = skip_plain_avx2(p, end);
	}
#else
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	while (end - p >= 8) {
		uint64_t x, q, b;
		memcpy(&x, p, 8);
		q = x ^ (ones * '"');
		b = x ^ (ones * '\\');
		/* Exact for the first special byte; borrows only disturb the bytes after it. */
		if ((((q - ones) & ~q) | ((b - ones) & ~b) | ((x - ones * 0x20) & ~x) | x) & highs)
			return p;
		p += 8;
	}
#endif
	return p;
}

/* p is at the opening quote. On success p is just past the closing quote. */
static bool scan_string(struct scan *sc, struct span *out)
{
	const unsigned char *p = sc->p + 1, *end = sc->end;
	const unsigned char *start = p;

	for (;;) {
		/* Most string bytes are plain ASCII: skip them a block at a time. */
		p = skip_plain(p, end);
		while (p < end && string_class[*p] == SC_PLAIN)
			p++;
		if (p >= end)
			return false;
		switch (string_class[*p]) {
		case SC_QUOTE:
			if (out) {
				out->s = (const char *)start;
				out->len = (size_t)(p - start);
				out->is_set = true;
			}
			sc->p = p + 1;
			return true;
		case SC_ESCAPE:
			if (end - p < 2)
				return false;
			switch (p[1]) {
			case '"':
			case '\\':
			case '/':
			case 'b':
			case 'f':
			case 'n':
			case 'r':
			case 't':
				p += 2;
				break;
			case 'u':
				if (end - p < 6 || !is_hex(p[2]) || !is_hex(p[3]) ||
				    !is_hex(p[4]) || !is_hex(p[5]))
					return false;
				p += 6;
				break;
			default:
				return false;
			}
			break;
		case SC_UTF8: {
			size_t n = utf8_seq(p, end);
			if (!n)
				return false;
			p += n;
			break;
		}
		default: /* control character, NUL included */
			return false;
		}
	}
}

struct number {
	const unsigned char *s;
	size_t len;
	bool is_negative;
	bool is_integer; /* no fraction, no exponent */
};

/* RFC 8259 number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool scan_number(struct scan *sc, struct number *out)
{
	const unsigned char *p = sc->p, *end = sc->end;
	bool is_negative = false, is_integer = true;

	if (p < end && *p == '-') {
		is_negative = true;
		p++;
	}
	if (p >= end)
		return false;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	} else {
		return false;
	}
	if (p < end && *p == '.') {
		is_integer = false;
		p++;
		if (p >= end || *p < '0' || *p > '9')
			return false;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		is_integer = false;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p >= end || *p < '0' || *p > '9')
			return false;
		while (p < end && *p >= '0' && *p <= '9')
			p++;
	}
	if (out) {
		out->s = sc->p;
		out->len = (size_t)(p - sc->p);
		out->is_negative = is_negative;
		out->is_integer = is_integer;
	}
	sc->p = p;
	return true;
}

/* p is at 't', 'f' or 'n'. */
static bool scan_literal(struct scan *sc)
{
	const char *word = *sc->p == 't' ? "true" : *sc->p == 'f' ? "false" : "null";
	size_t n = strlen(word);
	if ((size_t)(sc->end - sc->p) < n || memcmp(sc->p, word, n) != 0)
		return false;
	sc->p += n;
	return true;
}

/* Validates any value without extracting anything. Iterative: the bit stack records, per open
 * container, whether it is an object (1) or an array (0). depth is the nesting already used by
 * the caller. */
static bool skip_value(struct scan *sc, unsigned depth)
{
	uint64_t stack[METER_JSON_MAX_DEPTH / 64]; /* bits are set on push, read only below top */
	unsigned base = depth, top = depth; /* containers open below base belong to the caller */

	for (;;) {
		/* A value is expected here. */
		skip_ws(sc);
		if (sc->p >= sc->end)
			return false;
		switch (*sc->p) {
		case '{':
		case '[': {
			bool is_object = *sc->p == '{';
			if (top >= METER_JSON_MAX_DEPTH)
				return false;
			if (is_object)
				stack[top / 64] |= (uint64_t)1 << (top % 64);
			else
				stack[top / 64] &= ~((uint64_t)1 << (top % 64));
			top++;
			sc->p++;
			skip_ws(sc);
			if (sc->p >= sc->end)
				return false;
			if (*sc->p == (is_object ? '}' : ']')) {
				sc->p++;
				top--;
				break; /* empty container: a complete value */
			}
			if (is_object) {
				if (*sc->p != '"' || !scan_string(sc, NULL))
					return false;
				skip_ws(sc);
				if (sc->p >= sc->end || *sc->p != ':')
					return false;
				sc->p++;
			}
			continue; /* the first member's value */
		}
		case '"':
			if (!scan_string(sc, NULL))
				return false;
			break;
		case 't':
		case 'f':
		case 'n':
			if (!scan_literal(sc))
				return false;
			break;
		default:
			if (!scan_number(sc, NULL))
				return false;
			break;
		}

		/* A value is complete: close containers until one wants another member. */
		for (;;) {
			if (top == base)
				return true;
			bool is_object = stack[(top - 1) / 64] >> ((top - 1) % 64) & 1;
			skip_ws(sc);
			if (sc->p >= sc->end)
				return false;
			if (*sc->p == ',') {
				sc->p++;
				if (is_object) {
					skip_ws(sc);
					if (sc->p >= sc->end || *sc->p != '"' ||
					    !scan_string(sc, NULL))
						return false;
					skip_ws(sc);
					if (sc->p >= sc->end || *sc->p != ':')
						return false;
					sc->p++;
				}
				break; /* the next member's value */
			}
			if (*sc->p != (is_object ? '}' : ']'))
				return false;
			sc->p++;
			top--;
		}
	}
}

/* Any value: scalars directly, containers through the iterative loop. Most members of a line
 * are scalars, and they are skipped here without touching the container stack. */
static bool skip_any(struct scan *sc, unsigned depth)
{
	if (sc->p >= sc->end)
		return false;
	switch (*sc->p) {
	case '"':
		return scan_string(sc, NULL);
	case '{':
	case '[':
		return skip_value(sc, depth);
	case 't':
	case 'f':
	case 'n':
		return scan_literal(sc);
	default:
		return scan_number(sc, NULL);
	}
}

static bool span_is(const struct span *s, const char *lit)
{
	size_t n = strlen(lit);
	return s->len == n && !memcmp(s->s, lit, n);
}

static int usage_field(const struct span *key, enum ctx ctx)
{
	static const char *const snake[METER_NFIELDS] = {
		[METER_INPUT] = "input_tokens",
		[METER_OUTPUT] = "output_tokens",
		[METER_CACHE_CREATION] = "cache_creation_input_tokens",
		[METER_CACHE_READ] = "cache_read_input_tokens",
	};
	static const char *const camel[METER_NFIELDS] = {
		[METER_INPUT] = "inputTokens",
		[METER_OUTPUT] = "outputTokens",
		[METER_CACHE_CREATION] = "cacheCreationInputTokens",
		[METER_CACHE_READ] = "cacheReadInputTokens",
	};
	const char *const *names = ctx == CTX_MODEL ? camel : snake;
	for (int f = 0; f < METER_NFIELDS; f++)
		if (span_is(key, names[f]))
			return f;
	return -1;
}

/* A usage count: a non-negative integer no larger than 2^53, or null (absent); anything else
 * spoils its group. */
static bool scan_count(struct scan *sc, struct group *g, int field, bool is_summed, unsigned depth)
{
	struct number num;
	uint64_t v = 0;

	if (sc->p < sc->end && (*sc->p == '-' || (*sc->p >= '0' && *sc->p <= '9'))) {
		if (!scan_number(sc, &num))
			return false;
		/* 16 digits already exceed 2^53 only above 9007199254740992; 17 always do. */
		if (num.is_negative || !num.is_integer || num.len > 16) {
			g->is_bad = true;
			return true;
		}
		for (size_t i = 0; i < num.len; i++)
			v = v * 10 + (uint64_t)(num.s[i] - '0');
		if (v > METER_COUNT_MAX) {
			g->is_bad = true;
			return true;
		}
		g->n[field] = is_summed ? sat_add(g->n[field], v) : v;
		return true;
	}
	/* null: the API's counts are "number or null", and null means the field is absent (0 under
	 * the maxima), not a bad line: rejecting it would leave the whole call unmetered. */
	if (sc->p < sc->end && *sc->p == 'n')
		return scan_literal(sc);
	/* A string, other literal, object or array where a count belongs. */
	g->is_bad = true;
	return skip_value(sc, depth);
}

/* total_cost_usd to micro-USD, rounded half up, with exact decimal arithmetic (strtod would
 * depend on the host's locale and needs a NUL-terminated copy). */
static bool number_to_micro(const struct number *num, uint64_t *out)
{
	const unsigned char *p = num->s, *end = num->s + num->len;
	uint64_t mant = 0;
	long exp10 = 6; /* value * 10^6 */

	if (num->is_negative)
		return false;
	for (; p < end && *p >= '0' && *p <= '9'; p++) {
		if (mant <= (UINT64_MAX - 9) / 10)
			mant = mant * 10 + (uint64_t)(*p - '0');
		else
			exp10++; /* digit beyond what fits: only its magnitude matters */
	}
	if (p < end && *p == '.') {
		for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
			if (mant <= (UINT64_MAX - 9) / 10) {
				mant = mant * 10 + (uint64_t)(*p - '0');
				exp10--;
			}
		}
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		bool is_neg_exp = false;
		long e = 0;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			is_neg_exp = *p++ == '-';
		for (; p < end; p++)
			if (e < 100000)
				e = e * 10 + (*p - '0');
		exp10 += is_neg_exp ? -e : e;
	}
	if (mant == 0) {
		*out = 0;
		return true;
	}
	if (exp10 >= 0) {
		for (long i = 0; i < exp10 && mant != UINT64_MAX; i++)
			mant = sat_mul(mant, 10);
		*out = mant;
		return true;
	}
	if (exp10 < -19) { /* mant < 2^64 < 10^20: the value is below 0.5 */
		*out = 0;
		return true;
	}
	uint64_t div = 1;
	for (long i = 0; i < -exp10; i++)
		div *= 10;
	uint64_t q = mant / div, r = mant % div;
	*out = q + (r >= div - r); /* r * 2 >= div without overflow */
	return true;
}

static bool scan_object(struct scan *sc, enum ctx ctx, struct group *g, unsigned depth);

/* Scans the value of member `key` of an object in context ctx. */
static bool scan_member(struct scan *sc, enum ctx ctx, struct group *g, const struct span *key,
			unsigned depth)
{
	bool is_object = sc->p < sc->end && *sc->p == '{';
	bool is_string = sc->p < sc->end && *sc->p == '"';

	switch (ctx) {
	case CTX_ROOT:
		if (span_is(key, "type") && is_string)
			return scan_string(sc, &sc->type);
		if (span_is(key, "subtype") && is_string)
			return scan_string(sc, &sc->subtype);
		if (span_is(key, "message") && is_object)
			return scan_object(sc, CTX_MESSAGE, NULL, depth);
		if (span_is(key, "event") && is_object)
			return scan_object(sc, CTX_EVENT, NULL, depth);
		if (span_is(key, "usage") && is_object)
			return scan_object(sc, CTX_USAGE, &sc->root_usage, depth);
		if (span_is(key, "modelUsage") && is_object)
			return scan_object(sc, CTX_MODEL_USAGE, &sc->model_sum, depth);
		if (span_is(key, "total_cost_usd")) {
			struct number num;
			if (sc->p < sc->end &&
			    (*sc->p == '-' || (*sc->p >= '0' && *sc->p <= '9'))) {
				if (!scan_number(sc, &num))
					return false;
				sc->has_cost = number_to_micro(&num, &sc->cost_micro_usd);
				sc->is_cost_bad = !sc->has_cost;
				return true;
			}
			/* null: Claude Code writes no cost; anything else is garbage. */
			sc->is_cost_bad = !(sc->end - sc->p >= 4 && !memcmp(sc->p, "null", 4));
			return skip_value(sc, depth);
		}
		break;
	case CTX_MESSAGE:
		if (span_is(key, "id") && is_string)
			return scan_string(sc, &sc->msg_id);
		if (span_is(key, "model") && is_string)
			return scan_string(sc, &sc->msg_model);
		if (span_is(key, "usage") && is_object)
			return scan_object(sc, CTX_USAGE, &sc->msg_usage, depth);
		/* null until the stream's message_delta: a line written before it carries the
		 * message_start snapshot (output 1), not the call's final usage. */
		if (span_is(key, "stop_reason") && is_string) {
			struct span reason;
			sc->has_stop = true;
			return scan_string(sc, &reason);
		}
		break;
	case CTX_EVENT:
		if (span_is(key, "type") && is_string)
			return scan_string(sc, &sc->ev_type);
		if (span_is(key, "message") && is_object)
			return scan_object(sc, CTX_EV_MESSAGE, NULL, depth);
		if (span_is(key, "usage") && is_object)
			return scan_object(sc, CTX_USAGE, &sc->ev_usage, depth);
		break;
	case CTX_EV_MESSAGE:
		if (span_is(key, "id") && is_string)
			return scan_string(sc, &sc->ev_msg_id);
		if (span_is(key, "model") && is_string)
			return scan_string(sc, &sc->ev_model);
		if (span_is(key, "usage") && is_object)
			return scan_object(sc, CTX_USAGE, &sc->ev_msg_usage, depth);
		break;
	case CTX_MODEL_USAGE:
		if (is_object) {
			/* Summed into g for the token counts; each model's own share kept for
			 * pricing (its counts are what the sum grew by). */
			uint64_t before[METER_NFIELDS];
			memcpy(before, g->n, sizeof(before));
			if (!scan_object(sc, CTX_MODEL, g, depth))
				return false;
			if (sc->n_models == METER_RESULT_MODELS) {
				sc->models_over = true;
				return true;
			}
			struct model_rec *m = &sc->models[sc->n_models++];
			m->name = *key;
			for (int f = 0; f < METER_NFIELDS; f++)
				m->n[f] = g->n[f] - before[f];
			return true;
		}
		break;
	case CTX_CACHE_SPLIT:
		if (span_is(key, "ephemeral_1h_input_tokens"))
			return scan_count(sc, g, FIELD_CACHE_1H, false, depth);
		break;
	case CTX_USAGE:
		if (span_is(key, "cache_creation") && is_object)
			return scan_object(sc, CTX_CACHE_SPLIT, g, depth);
		/* fall through */
	case CTX_MODEL: {
		int f = usage_field(key, ctx);
		if (f >= 0)
			return scan_count(sc, g, f, ctx == CTX_MODEL, depth);
		break;
	}
	}
	return skip_any(sc, depth);
}

/* p is at '{'. Recurses only along the paths of interest (at most four levels). */
static bool scan_object(struct scan *sc, enum ctx ctx, struct group *g, unsigned depth)
{
	if (++depth > METER_JSON_MAX_DEPTH)
		return false;
	if (g) {
		if (ctx == CTX_USAGE)
			memset(g->n, 0, sizeof(g->n)); /* a repeated key: the last object wins */
		g->is_set = true;
	}
	sc->p++;
	skip_ws(sc);
	if (sc->p < sc->end && *sc->p == '}') {
		sc->p++;
		return true;
	}
	for (;;) {
		struct span key;
		if (sc->p >= sc->end || *sc->p != '"' || !scan_string(sc, &key))
			return false;
		skip_ws(sc);
		if (sc->p >= sc->end || *sc->p != ':')
			return false;
		sc->p++;
		skip_ws(sc);
		if (!scan_member(sc, ctx, g, &key, depth))
			return false;
		skip_ws(sc);
		if (sc->p >= sc->end)
			return false;
		if (*sc->p == '}') {
			sc->p++;
			return true;
		}
		if (*sc->p != ',')
			return false;
		sc->p++;
		skip_ws(sc);
	}
}

/* Copies a raw JSON string into a fixed buffer of cap bytes, cut at a character boundary. */
static void copy_span(char *dst, size_t cap, const struct span *src)
{
	size_t n = src->len < cap - 1 ? src->len : cap - 1;
	/* Back off over continuation bytes so that no multi-byte character is split. */
	if (n < src->len)
		while (n > 0 && ((unsigned char)src->s[n] & 0xc0) == 0x80)
			n--;
	memcpy(dst, src->s, n);
	dst[n] = '\0';
}

static int classify(const struct scan *sc, struct meter_event *ev, enum meter_anomaly *anomaly)
{
	const struct group *g = NULL;

	if (!sc->type.is_set)
		return 0;
	if (span_is(&sc->type, "result")) {
		if (sc->root_usage.is_bad || sc->model_sum.is_bad || sc->is_cost_bad)
			goto bad;
		ev->kind = METER_EV_RESULT;
		/* usage is the session so far, or only the last call (budget stop): modelUsage
		 * holds the session sums then. The larger of the two is never an overcount. */
		for (int f = 0; f < METER_NFIELDS; f++)
			ev->usage.n[f] = sc->root_usage.n[f] > sc->model_sum.n[f]
						 ? sc->root_usage.n[f]
						 : sc->model_sum.n[f];
		ev->has_cost = sc->has_cost;
		ev->cost_micro_usd = sc->has_cost ? sc->cost_micro_usd : 0;
		if (sc->subtype.is_set)
			copy_span(ev->subtype, sizeof(ev->subtype), &sc->subtype);
		ev->n_models = sc->n_models;
		ev->models_over = sc->models_over;
		for (unsigned i = 0; i < sc->n_models; i++) {
			copy_span(ev->models[i].name, sizeof(ev->models[i].name),
				  &sc->models[i].name);
			memcpy(ev->models[i].usage.n, sc->models[i].n, sizeof(sc->models[i].n));
		}
		return 0;
	}
	if (span_is(&sc->type, "assistant")) {
		/* Without an id the call cannot be counted exactly once: better not at all, the
		 * result line still covers it. */
		if (!sc->msg_usage.is_set || !sc->msg_id.is_set)
			return 0;
		g = &sc->msg_usage;
		ev->kind = METER_EV_MESSAGE;
		ev->id_hash = meter_hash_id(sc->msg_id.s, sc->msg_id.len);
		ev->is_final = sc->has_stop;
		if (sc->msg_model.is_set)
			copy_span(ev->model, sizeof(ev->model), &sc->msg_model);
	} else if (span_is(&sc->type, "stream_event") && sc->ev_type.is_set) {
		if (span_is(&sc->ev_type, "message_start")) {
			if (!sc->ev_msg_usage.is_set || !sc->ev_msg_id.is_set)
				return 0;
			g = &sc->ev_msg_usage;
			ev->kind = METER_EV_MESSAGE_START;
			ev->id_hash = meter_hash_id(sc->ev_msg_id.s, sc->ev_msg_id.len);
			if (sc->ev_model.is_set)
				copy_span(ev->model, sizeof(ev->model), &sc->ev_model);
		} else if (span_is(&sc->ev_type, "message_delta")) {
			if (!sc->ev_usage.is_set)
				return 0;
			g = &sc->ev_usage;
			ev->kind = METER_EV_MESSAGE_DELTA;
			ev->is_final = true;
		}
	}
	if (!g)
		return 0;
	if (g->is_bad)
		goto bad;
	ev->usage = (struct meter_usage){{g->n[0], g->n[1], g->n[2], g->n[3]}};
	/* More output than a message_start snapshot has: the count is final, stop_reason or not
	 * (1.0.x writes none on a text-only answer). */
	if (ev->kind == METER_EV_MESSAGE && ev->usage.n[METER_OUTPUT] > METER_SNAPSHOT_OUTPUT_MAX)
		ev->is_final = true;
	ev->cache_1h = g->n[FIELD_CACHE_1H];
	return 0;
bad:
	memset(ev, 0, sizeof(*ev));
	*anomaly = METER_ANOM_BAD_NUMBER;
	return -1;
}

/* The one scan every line pays for: compares 'u' and the 'e' four bytes on, a block of positions
 * at a time, and confirms the rare pairs; two to three times as fast as memmem on text and tool
 * output. Returns the index from which the plain search must go on (no marker before it). */
#ifdef __SSE2__
static bool marker_confirm(const char *s, unsigned mask)
{
	while (mask) {
		if (!memcmp(s + __builtin_ctz(mask) + 1, "sag", 3))
			return true;
		mask &= mask - 1;
	}
	return false;
}

__attribute__((target("avx2"))) static bool marker_avx2(const char *s, size_t len, size_t *done)
{
	const __m256i first = _mm256_set1_epi8('u'), last = _mm256_set1_epi8('e');
	size_t i = 0;
	for (; len >= 36 && i <= len - 36; i += 32) {
		__m256i a = _mm256_loadu_si256((const __m256i *)(const void *)(s + i));
		__m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(s + i + 4));
		unsigned mask = (unsigned)_mm256_movemask_epi8(
			_mm256_and_si256(_mm256_cmpeq_epi8(a, first), _mm256_cmpeq_epi8(b, last)));
		if (mask && marker_confirm(s + i, mask))
			return true;
	}
	*done = i;
	return false;
}

static bool marker_sse2(const char *s, size_t len, size_t *done)
{
	const __m128i first = _mm_set1_epi8('u'), last = _mm_set1_epi8('e');
	size_t i = 0;
	for (; len >= 20 && i <= len - 20; i += 16) {
		__m128i a = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
		__m128i b = _mm_loadu_si128((const __m128i *)(const void *)(s + i + 4));
		unsigned mask = (unsigned)_mm_movemask_epi8(
			_mm_and_si128(_mm_cmpeq_epi8(a, first), _mm_cmpeq_epi8(b, last)));
		if (mask && marker_confirm(s + i, mask))
			return true;
	}
	*done = i;
	return false;
}
#endif

static bool has_usage_marker(const char *s, size_t len)
{
	size_t done = 0;
#ifdef __SSE2__
	if (simd_level() == 2 ? marker_avx2(s, len, &done) : marker_sse2(s, len, &done))
		return true;
#endif
	return len - done >= 5 && memmem(s + done, len - done, "usage", 5) != NULL;
}

/* The end of the line at p (its '\n', or NULL when the bytes end first) and whether the line
 * holds the usage marker: one pass over the bytes instead of memchr and then the marker scan. */
#ifdef __SSE2__
__attribute__((target("avx2"))) static const char *line_end_avx2(const char *p, const char *end,
								 bool *has_marker)
{
	const __m256i newline = _mm256_set1_epi8('\n');
	const __m256i first = _mm256_set1_epi8('u'), last = _mm256_set1_epi8('e');
	const char *nl;

	for (; end - p >= 36; p += 32) {
		__m256i a = _mm256_loadu_si256((const __m256i *)(const void *)p);
		__m256i b = _mm256_loadu_si256((const __m256i *)(const void *)(p + 4));
		unsigned nlmask = (unsigned)_mm256_movemask_epi8(_mm256_cmpeq_epi8(a, newline));
		unsigned mask = (unsigned)_mm256_movemask_epi8(
			_mm256_and_si256(_mm256_cmpeq_epi8(a, first), _mm256_cmpeq_epi8(b, last)));
		/* A marker cannot straddle the newline ('\n' is none of its letters): only the
		 * candidates before it belong to this line. */
		if (nlmask)
			mask &= (1u << __builtin_ctz(nlmask)) - 1;
		if (mask && marker_confirm(p, mask)) {
			*has_marker = true;
			return memchr(p, '\n', (size_t)(end - p));
		}
		if (nlmask) {
			*has_marker = false;
			return p + __builtin_ctz(nlmask);
		}
	}
	/* Every position before p was checked with all five bytes in view. */
	nl = memchr(p, '\n', (size_t)(end - p));
	*has_marker = memmem(p, (size_t)((nl ? nl : end) - p), "usage", 5) != NULL;
	return nl;
}
#endif

static const char *line_end(const char *p, const char *end, bool *has_marker)
{
#ifdef __SSE2__
	if (simd_level() == 2)
		return line_end_avx2(p, end, has_marker);
#endif
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	*has_marker = has_usage_marker(p, (size_t)((nl ? nl : end) - p));
	return nl;
}

/* meter_parse_line() once the marker is known to be there. */
static int parse_candidate(const char *line, size_t len, struct meter_event *ev,
			   enum meter_anomaly *anomaly)
{
	struct scan sc = {
		.p = (const unsigned char *)line,
		.end = (const unsigned char *)line + len,
	};
	bool is_ok;
	skip_ws(&sc);
	if (sc.p < sc.end && *sc.p == '{')
		is_ok = scan_object(&sc, CTX_ROOT, NULL, 0);
	else
		is_ok = skip_value(&sc, 0); /* valid JSON perhaps, but no object: no usage */
	if (is_ok) {
		skip_ws(&sc);
		is_ok = sc.p == sc.end; /* two values spliced into one line are not one value */
	}
	if (!is_ok) {
		*anomaly = METER_ANOM_NOT_JSON;
		return -1;
	}
	return classify(&sc, ev, anomaly);
}

int meter_parse_line(const char *line, size_t len, struct meter_event *ev,
		     enum meter_anomaly *anomaly)
{
	memset(ev, 0, sizeof(*ev));
	if (!has_usage_marker(line, len))
		return 0;
	return parse_candidate(line, len, ev, anomaly);
}

/* ------------------------------------------------------------------------------------------ */
/* Accounting */

#define INDEX_MASK (METER_INDEX - 1)

static uint32_t index_home(uint64_t id_hash)
{
	/* The id is a hash already; its high bits pick the home slot. */
	return (uint32_t)(id_hash >> 40) & INDEX_MASK;
}

/* Position in core->index of id_hash, or of the empty entry where it would go. */
static uint32_t index_probe(const struct meter_core *core, uint64_t id_hash)
{
	uint32_t i = index_home(id_hash);
	while (core->index[i] && core->win[core->index[i] - 1].id_hash != id_hash)
		i = (i + 1) & INDEX_MASK;
	return i;
}

static struct meter_msg *find_msg(struct meter_core *core, uint64_t id_hash)
{
	uint32_t i = index_probe(core, id_hash);
	return core->index[i] ? &core->win[core->index[i] - 1] : NULL;
}

/* Removes the entry at i, shifting later entries of the same probe run back so that lookups
 * never stop early at the hole (linear probing's deletion, no tombstones). */
static void index_remove(struct meter_core *core, uint32_t i)
{
	uint32_t j = i;
	for (;;) {
		j = (j + 1) & INDEX_MASK;
		if (!core->index[j])
			break;
		uint32_t k = index_home(core->win[core->index[j] - 1].id_hash);
		/* Move j into the hole unless its home lies cyclically in (i, j]. */
		bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
		if (!stays) {
			core->index[i] = core->index[j];
			i = j;
		}
	}
	core->index[i] = 0;
}

static struct meter_msg *add_msg(struct meter_core *core, uint64_t id_hash)
{
	uint32_t slot = core->win_next % METER_WINDOW;
	struct meter_msg *m = &core->win[slot];

	if (m->id_hash) /* the oldest message leaves the window */
		index_remove(core, index_probe(core, m->id_hash));
	memset(m, 0, sizeof(*m));
	m->id_hash = id_hash;
	core->index[index_probe(core, id_hash)] = (uint16_t)(slot + 1);
	core->win_next = (core->win_next + 1) % METER_WINDOW;
	if (core->win_used < METER_WINDOW)
		core->win_used++;
	core->messages++;
	return m;
}

/* Whether a message's model names a model that answered: Claude Code writes messages it made
 * up itself (an API error, "No response requested.") with model "<synthetic>" and no usage. */
static bool is_real_model(const char *name)
{
	return name && *name && strcmp(name, "<synthetic>") != 0;
}

/* 1 + the index of a model's name in the core's table (interned there, without a trailing
 * "[...]" tag: a result's "claude-opus-4-8[1m]" is its calls' "claude-opus-4-8"); 0 for no
 * model or a full table (priced as unknown). */
static uint8_t intern_model(struct meter_core *core, const char *name)
{
	if (!is_real_model(name))
		return 0;
	char key[METER_MODEL_LEN];
	snprintf(key, sizeof(key), "%s", name);
	size_t n = strlen(key);
	char *tag = strchr(key, '[');
	if (tag && n > 0 && key[n - 1] == ']' && tag > key)
		*tag = '\0';
	for (uint32_t i = 0; i < core->n_models && i < METER_MODELS; i++)
		if (!strncmp(core->models[i], key, METER_MODEL_LEN))
			return (uint8_t)(i + 1);
	if (core->n_models >= METER_MODELS)
		return 0;
	snprintf(core->models[core->n_models], METER_MODEL_LEN, "%s", key);
	return (uint8_t)++core->n_models;
}

static const char *model_name(const struct meter_core *core, uint8_t model)
{
	return model && model <= core->n_models ? core->models[model - 1] : "";
}

/* Raises the per-field maxima of one message; only the increase goes into msg_sum (and, priced,
 * into pusd_msgs). Returns true when the message is new. */
static bool raise_msg(struct meter_core *core, uint64_t id_hash, const struct meter_usage *u,
		      const char *model, uint64_t cache_1h, uint8_t flags)
{
	struct meter_msg *m = find_msg(core, id_hash);
	bool is_new = !m, is_raised = false;

	/* Not found also covers a message pushed out of the window since its start: counting it
	 * again can only overcount, never let usage through unmetered. */
	if (!m)
		m = add_msg(core, id_hash);
	m->flags |= flags;
	for (int f = 0; f < METER_NFIELDS; f++) {
		if (u->n[f] > m->n[f]) {
			core->msg_sum.n[f] = sat_add(core->msg_sum.n[f], u->n[f] - m->n[f]);
			m->n[f] = u->n[f];
			is_raised = true;
		}
	}
	if (m->n[METER_OUTPUT] > core->largest_output)
		core->largest_output = m->n[METER_OUTPUT];
	if (cache_1h > m->cache_1h) {
		m->cache_1h = cache_1h;
		is_raised = true;
	}
	if (!m->model && is_real_model(model)) {
		m->model = intern_model(core, model);
		/* Priced so far as a call of no model: it moves to its own. */
		if (m->model && m->pusd) {
			core->model_msg_pusd[0] -= m->pusd < core->model_msg_pusd[0]
							   ? m->pusd
							   : core->model_msg_pusd[0];
			core->model_msg_pusd[m->model] =
				sat_add(core->model_msg_pusd[m->model], m->pusd);
		}
		is_raised = true;
	}
	if (m->model)
		core->last_model = m->model;
	if (is_raised && core->price) {
		struct meter_usage now;
		memcpy(now.n, m->n, sizeof(now.n));
		uint64_t p = core->price(core->price_ctx, model_name(core, m->model), &now,
					 m->cache_1h, false);
		if (p > m->pusd) {
			core->model_msg_pusd[m->model] =
				sat_add(core->model_msg_pusd[m->model], p - m->pusd);
			m->pusd = p;
		}
	}
	return is_new;
}

/* A result line's usage priced per model: each model of its modelUsage at that model's rates,
 * what its usage holds beyond them (no modelUsage at all, or more models than kept) at the
 * rates of the agent's latest model. Sums over calls: no 1-hour split (priced as 5-minute
 * writes) and no prompt-length tier; each model keeps the larger of this and its calls' sum. */
static void price_result(struct meter_core *core, const struct meter_event *ev)
{
	uint64_t line[METER_MODELS + 1] = {0};
	struct meter_usage rest = ev->usage;
	for (unsigned i = 0; i < ev->n_models && i < METER_RESULT_MODELS; i++) {
		const struct meter_model_usage *m = &ev->models[i];
		uint8_t slot = intern_model(core, m->name);
		line[slot] = sat_add(line[slot],
				     core->price(core->price_ctx, m->name, &m->usage, 0, true));
		for (int f = 0; f < METER_NFIELDS; f++)
			rest.n[f] = rest.n[f] > m->usage.n[f] ? rest.n[f] - m->usage.n[f] : 0;
	}
	if (meter_usage_total(&rest, NULL)) {
		uint8_t slot = core->last_model <= core->n_models ? core->last_model : 0;
		line[slot] = sat_add(line[slot], core->price(core->price_ctx,
							     model_name(core, core->last_model),
							     &rest, 0, true));
	}
	for (int k = 0; k <= METER_MODELS; k++)
		if (line[k] > core->model_res_pusd[k])
			core->model_res_pusd[k] = line[k];
}

/* A call seen on s, kept for the reader when it tracks calls. */
static void note_fresh(struct meter_stream *s, uint64_t id_hash, bool is_new)
{
	if (!s || !s->track_calls || (!is_new && id_hash == s->fresh_last))
		return;
	s->fresh_last = id_hash;
	if (s->n_fresh == METER_FRESH) {
		s->fresh_lost++;
		return;
	}
	s->fresh[s->n_fresh].id_hash = id_hash;
	s->fresh[s->n_fresh].tool_bytes = s->tool_bytes;
	s->fresh[s->n_fresh].is_new = is_new;
	s->n_fresh++;
}

bool meter_message_model(const struct meter_core *core, uint64_t id_hash, uint64_t *cache_1h,
			 const char **model)
{
	const struct meter_msg *m = find_msg((struct meter_core *)core, id_hash);
	if (!m)
		return false;
	*cache_1h = m->cache_1h;
	*model = model_name(core, m->model);
	return true;
}

uint64_t meter_message_pusd(const struct meter_core *core, uint64_t id_hash)
{
	const struct meter_msg *m = find_msg((struct meter_core *)core, id_hash);
	return m ? m->pusd : 0;
}

const char *meter_last_model(const struct meter_core *core)
{
	return model_name(core, core->last_model);
}

bool meter_message_usage(const struct meter_core *core, uint64_t id_hash, struct meter_usage *out)
{
	const struct meter_msg *m = find_msg((struct meter_core *)core, id_hash);
	if (!m)
		return false;
	memcpy(out->n, m->n, sizeof(out->n));
	return true;
}

unsigned meter_take_calls(struct meter_stream *s, struct meter_fresh *out, unsigned max)
{
	unsigned n = s->n_fresh < max ? s->n_fresh : max;
	memcpy(out, s->fresh, sizeof(out[0]) * n);
	memmove(s->fresh, s->fresh + n, sizeof(s->fresh[0]) * (s->n_fresh - n));
	s->n_fresh -= n;
	return n;
}

static void update_total(struct meter_core *core, struct meter_usage *delta)
{
	uint64_t pusd = 0;
	for (int k = 0; k <= METER_MODELS; k++)
		pusd = sat_add(pusd, core->model_msg_pusd[k] > core->model_res_pusd[k]
					     ? core->model_msg_pusd[k]
					     : core->model_res_pusd[k]);
	if (pusd > core->pusd_total)
		core->pusd_total = pusd;
	for (int f = 0; f < METER_NFIELDS; f++) {
		uint64_t t = core->msg_sum.n[f] > core->result.n[f] ? core->msg_sum.n[f]
								    : core->result.n[f];
		if (t > core->total.n[f]) {
			if (delta)
				delta->n[f] = sat_add(delta->n[f], t - core->total.n[f]);
			core->total.n[f] = t;
		}
	}
}

static uint8_t msg_flags(const struct meter_event *ev)
{
	return ev->is_final ? METER_MSG_FINAL : 0;
}

void meter_unfinal(const struct meter_core *core, bool (*skip)(const void *ctx, uint64_t id_hash),
		   const void *ctx, struct meter_unfinal *out)
{
	memset(out, 0, sizeof(*out));
	uint64_t largest = core->largest_output;
	for (uint32_t i = 0; i < METER_WINDOW; i++) {
		const struct meter_msg *m = &core->win[i];
		if (!m->id_hash || (m->flags & (METER_MSG_FINAL | METER_MSG_COVERED)) ||
		    (skip && skip(ctx, m->id_hash)))
			continue;
		out->calls++;
		if (m->n[METER_OUTPUT] >= largest)
			continue;
		out->gap = sat_add(out->gap, largest - m->n[METER_OUTPUT]);
		if (!core->price)
			continue;
		/* The call as it would be, priced whole (a prompt-length tier is the call's). */
		struct meter_usage would;
		memcpy(would.n, m->n, sizeof(would.n));
		would.n[METER_OUTPUT] = largest;
		uint64_t p = core->price(core->price_ctx, model_name(core, m->model), &would,
					 m->cache_1h, false);
		if (p > m->pusd)
			out->gap_pusd = sat_add(out->gap_pusd, p - m->pusd);
	}
}

void meter_apply(struct meter_core *core, struct meter_stream *s, const struct meter_event *ev,
		 struct meter_usage *delta)
{
	switch (ev->kind) {
	case METER_EV_NONE:
		return;
	case METER_EV_MESSAGE:
		note_fresh(s, ev->id_hash,
			   raise_msg(core, ev->id_hash, &ev->usage, ev->model, ev->cache_1h,
				     msg_flags(ev)));
		break;
	case METER_EV_MESSAGE_START:
		note_fresh(s, ev->id_hash,
			   raise_msg(core, ev->id_hash, &ev->usage, ev->model, ev->cache_1h,
				     msg_flags(ev)));
		if (s) {
			s->cur_msg = ev->id_hash;
			s->has_cur_msg = true;
		}
		break;
	case METER_EV_MESSAGE_DELTA:
		if (!s || !s->has_cur_msg) {
			core->anomalies[METER_ANOM_ORPHAN_DELTA]++;
			return;
		}
		raise_msg(core, s->cur_msg, &ev->usage, NULL, ev->cache_1h, METER_MSG_FINAL);
		break;
	case METER_EV_RESULT:
		core->results++;
		/* Its modelUsage is the whole session's so far (subagents included, measured): the
		 * calls made until now are in its figures with their final output, whatever their
		 * lines showed, and the total takes the larger. Its usage alone is the main
		 * conversation's, which a subagent's calls in the sum can hide: no cover then. */
		if (ev->n_models > 0 || ev->models_over)
			for (uint32_t i = 0; i < METER_WINDOW; i++)
				if (core->win[i].id_hash)
					core->win[i].flags |= METER_MSG_COVERED;
		for (int f = 0; f < METER_NFIELDS; f++)
			if (ev->usage.n[f] > core->result.n[f])
				core->result.n[f] = ev->usage.n[f];
		if (ev->has_cost && ev->cost_micro_usd > core->cost_micro_usd)
			core->cost_micro_usd = ev->cost_micro_usd;
		memcpy(core->result_subtype, ev->subtype, METER_SUBTYPE_LEN);
		core->result_subtype[METER_SUBTYPE_LEN - 1] = '\0';
		if (core->price)
			price_result(core, ev);
		break;
	}
	update_total(core, delta);
}

/* ------------------------------------------------------------------------------------------ */
/* Streams */

void meter_stream_init(struct meter_stream *s, size_t max_line)
{
	memset(s, 0, sizeof(*s));
	s->max_line = max_line ? max_line : METER_LINE_MAX_DEFAULT;
}

void meter_stream_free(struct meter_stream *s)
{
	free(s->buf);
	s->buf = NULL;
	s->len = 0;
	s->cap = 0;
}

/* One JSON value of a source (a line, or an element of a line that is an array): what the
 * request book needs besides its event (tool results, a call asking for a tool), then the
 * event itself. */
static void take_event(struct meter_core *core, struct meter_stream *s, const char *v, size_t len,
		       const struct meter_event *ev, struct meter_usage *delta)
{
	if (ev->kind == METER_EV_NONE) {
		/* What the next call will be sent besides what the last one was: tool results. */
		if (s->track_calls && memmem(v, len, "\"tool_result\"", 13))
			s->tool_bytes += len;
		core->lines_ignored++;
		return;
	}
	if (s->track_calls && ev->kind == METER_EV_MESSAGE && memmem(v, len, "\"tool_use\"", 10))
		s->tool_use_id = ev->id_hash;
	meter_apply(core, s, ev, delta);
}

/*
 * A line that is one JSON array (`--output-format json --verbose` prints every message of the
 * session as one array, the result last): each object in it is taken as if it were a line.
 * Returns false when the line is not one valid array (an anomaly, as for a line).
 */
static bool take_array(struct meter_core *core, struct meter_stream *s, const char *line,
		       size_t len, struct meter_usage *delta)
{
	struct scan outer = {.p = (const unsigned char *)line,
			     .end = (const unsigned char *)line + len};
	skip_ws(&outer);
	outer.p++; /* '[' */
	skip_ws(&outer);
	if (outer.p < outer.end && *outer.p == ']') {
		outer.p++;
	} else {
		for (;;) {
			if (outer.p >= outer.end)
				return false;
			const unsigned char *start = outer.p;
			if (*outer.p == '{') {
				struct scan sc = {.p = outer.p, .end = outer.end};
				struct meter_event ev;
				enum meter_anomaly anomaly;
				memset(&ev, 0, sizeof(ev));
				if (!scan_object(&sc, CTX_ROOT, NULL, 1))
					return false;
				if (classify(&sc, &ev, &anomaly) < 0) {
					if ((unsigned)anomaly < METER_NANOMALY)
						core->anomalies[anomaly]++;
				} else {
					take_event(core, s, (const char *)start,
						   (size_t)(sc.p - start), &ev, delta);
				}
				outer.p = sc.p;
			} else if (!skip_value(&outer, 1)) {
				return false;
			}
			skip_ws(&outer);
			if (outer.p < outer.end && *outer.p == ',') {
				outer.p++;
				skip_ws(&outer);
				continue;
			}
			if (outer.p < outer.end && *outer.p == ']') {
				outer.p++;
				break;
			}
			return false;
		}
	}
	skip_ws(&outer);
	return outer.p == outer.end;
}

/* has_marker: the caller already knows whether the line holds the usage marker. */
static void process_line(struct meter_core *core, struct meter_stream *s, const char *line,
			 size_t len, bool has_marker, struct meter_usage *delta)
{
	struct meter_event ev;
	enum meter_anomaly anomaly;

	core->lines++;
	memset(&ev, 0, sizeof(ev));
	if (!has_marker) {
		take_event(core, s, line, len, &ev, delta);
		return;
	}
	size_t i = 0;
	while (i < len && is_ws((unsigned char)line[i]))
		i++;
	if (i < len && line[i] == '[') {
		if (!take_array(core, s, line, len, delta))
			core->anomalies[METER_ANOM_NOT_JSON]++;
		return;
	}
	if (parse_candidate(line, len, &ev, &anomaly) < 0) {
		if ((unsigned)anomaly < METER_NANOMALY)
			core->anomalies[anomaly]++;
		return;
	}
	take_event(core, s, line, len, &ev, delta);
}

/* Drops the line in progress; the rest of it, up to the next newline, is dropped as well. */
static void start_skipping(struct meter_core *core, struct meter_stream *s, enum meter_anomaly why)
{
	core->anomalies[why]++;
	s->len = 0;
	s->skipping = true;
}

/* Room for `need` bytes of partial line; need <= max_line. Doubling keeps copies amortised and
 * the buffer is kept between lines, so a steady stream allocates nothing. */
static bool reserve(struct meter_stream *s, size_t need)
{
	if (need <= s->cap)
		return true;
	size_t cap = s->cap ? s->cap : METER_BUF_INITIAL;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? SIZE_MAX : cap * 2;
	if (cap > s->max_line)
		cap = s->max_line;
	char *buf = realloc(s->buf, cap);
	if (!buf)
		return false;
	s->buf = buf;
	s->cap = cap;
	return true;
}

bool meter_feed(struct meter_core *core, struct meter_stream *s, uint64_t pos, const void *data,
		size_t len, struct meter_usage *delta)
{
	const char *p = data;
	size_t n = len;
	bool is_ok = true;

	if (len == 0 || !data)
		return true; /* an empty write says nothing, not even that bytes were lost */
	if (pos != METER_POS_APPEND) {
		if (pos < s->end) {
			uint64_t seen = s->end - pos;
			if (seen >= n)
				return true; /* all of it was taken in already */
			p += seen;
			n -= (size_t)seen;
		} else if (pos > s->end) {
			/* The bytes in between are lost: whatever line they belonged to cannot be
			 * trusted, and data[0] may be in the middle of a line. */
			start_skipping(core, s, METER_ANOM_GAP);
			s->end = pos;
		}
	}
	s->end += n;

	while (n > 0) {
		const char *nl;

		if (s->skipping) {
			nl = memchr(p, '\n', n);
			if (!nl)
				break;
			s->skipping = false;
			n -= (size_t)(nl + 1 - p);
			p = nl + 1;
			continue;
		}
		if (s->len == 0) {
			/* Complete lines inside this chunk are parsed where they lie. */
			bool has_marker;
			while (n > 0 && (nl = line_end(p, p + n, &has_marker)) != NULL) {
				size_t l = (size_t)(nl - p);
				if (l <= s->max_line)
					process_line(core, s, p, l, has_marker, delta);
				else
					core->anomalies[METER_ANOM_OVERSIZE]++;
				n -= l + 1;
				p = nl + 1;
			}
			if (n == 0)
				break;
			if (n > s->max_line) {
				start_skipping(core, s, METER_ANOM_OVERSIZE);
				break;
			}
			if (!reserve(s, n)) {
				start_skipping(core, s, METER_ANOM_OVERSIZE);
				is_ok = false;
				break;
			}
			memcpy(s->buf, p, n);
			s->len = n;
			break;
		}
		/* Continuing a partial line. */
		nl = memchr(p, '\n', n);
		size_t take = nl ? (size_t)(nl - p) : n;
		if (take > s->max_line - s->len) {
			start_skipping(core, s, METER_ANOM_OVERSIZE);
			continue; /* the newline, if any, ends the skip */
		}
		if (!reserve(s, s->len + take)) {
			start_skipping(core, s, METER_ANOM_OVERSIZE);
			is_ok = false;
			continue;
		}
		memcpy(s->buf + s->len, p, take);
		s->len += take;
		if (!nl)
			break;
		process_line(core, s, s->buf, s->len, has_usage_marker(s->buf, s->len), delta);
		s->len = 0;
		n -= take + 1;
		p = nl + 1;
	}
	return is_ok;
}

void meter_finish(struct meter_core *core, struct meter_stream *s, struct meter_usage *delta)
{
	if (s->skipping) {
		s->skipping = false;
		return;
	}
	if (s->len > 0) {
		process_line(core, s, s->buf, s->len, has_usage_marker(s->buf, s->len), delta);
		s->len = 0;
	}
}
