/*
 * The supervisor's own state, shared by its modules (private to launcher/):
 *
 *   supervisor.c  the loop: epoll over the signalfd, the socket, connections, listeners, pidfds
 *   agents.c      the agent table: registration (HELLO), adoption of agents found without
 *                 libtbwrap.so, their description from /proc, admission, their end
 *   notify.c      seccomp notifications: who wrote what where, metering, the request barrier
 *   enforce.c     budgets: threshold warnings, block mode's stops, the barrier's decisions
 *   scan.c        the command's process tree: agents that started without libtbwrap.so
 *   procfs.c, streampos.c (include/tbwrap/): /proc readers and stream positions
 *
 * Nothing here is in shared memory: the supervisor is non-dumpable, so no other process can
 * read or write any of it. The ledger is where it publishes.
 */
#ifndef TBWRAP_SUP_H
#define TBWRAP_SUP_H

#include <linux/seccomp.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "tbwrap/agent.h"
#include "tbwrap/ledger.h"
#include "tbwrap/meter.h"
#include "tbwrap/proto.h"
#include "tbwrap/requests.h"
#include "tbwrap/streampos.h"
#include "tbwrap/supervisor.h"
#include "tbwrap/wire.h"

#define SUP_MAX_AGENTS LEDGER_MAX_INSTANCES
/* stdout and transcripts (the session's, and one per subagent) of one agent */
#define SUP_MAX_SOURCES 256
#define SUP_TID_CACHE 4096
#define SUP_READ_CHUNK ((size_t)1 << 20)
#define SUP_TICK_MS 100
/* Block mode: a socket write after this much socket silence starts a new API request. */
#define SUP_REQUEST_GAP_MS 50
/* Longest a request waits for the previous call's usage to be written. */
#define SUP_HOLD_MS 1000
/* A stopped agent's first signal waits for the usage of its calls in flight: until this long
 * after the last usage it wrote, and this long at most. */
#define SUP_SETTLE_MS 300
#define SUP_DRAIN_MS 5000
/* Connections of one agent whose last write time is kept (to tell a new request from the rest
 * of one); the least recently written is forgotten first. */
#define SUP_SOCKETS 16
/* How long orphans of an exited command may take to become agents and register. */
#define SUP_ORPHAN_GRACE_MS 1000
/* How long a connection may stay without saying anything before it is dropped. */
#define SUP_HELLO_MS 5000
#define SUP_LIVE_MS 500
/* An agent that has had this many API calls answered with no usage metered at all is one tbwrap
 * cannot read (an unknown output format): block mode stops it, warn mode says so. A call counts
 * as answered when its connection carries the next request (HTTP/1.1 answers in order). */
#define SUP_BLIND_ANSWERED 2

enum src_kind { SRC_STDOUT = 1, SRC_TRANSCRIPT };

struct source {
	dev_t dev;
	ino_t ino;
	int kind;
	bool subagent;	     /* a subagent's transcript (<session>/subagents/...) */
	int conv;	     /* its conversation in the agent's request book */
	uint64_t preempt_id; /* the tool-asking call whose next call was judged already */
	struct meter_stream s;
	struct stream_pos pos;
};

/* What an epoll event points at. */
enum watch_kind { W_SIGNAL = 1, W_LISTEN, W_CONN, W_NOTIF, W_PIDFD };
struct watch {
	enum watch_kind kind;
	int fd;
};

struct file_id {
	dev_t dev;
	ino_t ino;
};

/* What a connection of an agent talks to. */
enum sock_peer {
	PEER_UNKNOWN, /* not seen yet (or no host in its first bytes): taken for the API */
	PEER_API,
	PEER_OTHER, /* another host: its requests are not API calls */
};

/* The meter's price function's view of one agent: the table, and the latest model it could not
 * price (enforce.c acts on each once). */
struct pricing {
	const struct price_table *table;
	bool unpriced;
	bool acted;
	char model[METER_MODEL_LEN];
};

struct agent {
	bool used;
	bool ended;
	bool stopping;
	bool metered; /* false: runs, but tbwrap cannot meter it (warn mode) */
	bool adopted; /* found by the supervisor: no libtbwrap.so in it */
	bool warned_sources;
	bool warned_blind;
	bool key_settled; /* the transcript's first prompt has been read (or there is none) */
	pid_t pid;
	int inst;
	struct watch pidw; /* its pidfd */
	struct conn *conn; /* its connection; NULL for adopted agents */
	uint64_t kill_at_ms;
	uint64_t quiet_until_ms; /* a stop's SIGINT waits until then at least */
	int kill_step;		 /* the stop's signals sent so far: SIGINT, SIGTERM, SIGKILL */
	/* where its usage is */
	bool stdout_json;
	bool stdout_stream; /* stream-json */
	bool usage_at_end;  /* json without a transcript: the result line is all there is */
	struct file_id stdout_id;
	struct file_id stdio_sock[3]; /* sockets it got as fds 0-2: stdio, never API traffic */
	char config_dir[4096];
	struct file_id projects; /* <config_dir>/projects once it exists */
	struct meter_core *core;
	struct pricing pricing;
	int n_sources;
	struct source *sources;
	/* API requests (see enforce.c): the connections' last writes, the book of requests in
	 * flight with their predictions, and those waiting at block mode's barrier. */
	struct sock_seen {
		uint64_t key; /* dev and inode of the connection's socket */
		uint64_t last_ms;
		bool had_call;
		bool in_call;	     /* the current burst of writes is a call */
		bool plain;	     /* plain HTTP: each request line is a request */
		enum sock_peer peer; /* the host it talks to, once seen (include/tbwrap/wire.h) */
	} socks[SUP_SOCKETS];
	/* The API host (ANTHROPIC_BASE_URL's, else api.anthropic.com); "" when any host may be
	 * it (Bedrock, Vertex: every connection is taken for the API). */
	char api_host[WIRE_HOST_MAX];
	uint64_t requests; /* API requests started */
	uint64_t answered; /* of them, answered (their connection carried the next one) */
	struct req_book book;
	int n_held;
	struct held_request {
		int lfd;
		uint64_t id;
		uint64_t sock;
		int64_t len;
		uint64_t until_ms;
	} held[REQ_MAX_OPEN];
};

struct conn {
	struct watch w;
	int agent; /* index, -1 before (or without) a HELLO */
	uint64_t since_ms;
	struct conn *next;
};

struct listener {
	struct watch w;
	pid_t owner;
	struct listener *next;
};

struct tid_entry {
	pid_t tid;
	pid_t tgid;
	int agent; /* index, -1 for a non-agent */
};

struct sup {
	const struct supervisor_config *cfg;
	struct ledger *l;
	int epfd;
	struct watch sigw, listenw;
	struct agent agents[SUP_MAX_AGENTS];
	int n_agents; /* high-water mark of agents[] */
	struct conn *conns;
	int n_conns;
	struct listener *listeners;
	int n_listeners;
	struct tid_entry tids[SUP_TID_CACHE];
	struct seccomp_notif *req;
	struct seccomp_notif_resp *resp;
	size_t req_size, resp_size;
	char *buf;
	uid_t uid;
	bool child_done;
	bool has_orphans;
	uint64_t child_done_ms;
	int child_status;
	bool child_stopped;
	bool live_drawn;
	uint64_t next_live_ms;
	struct pid_start {
		pid_t pid;
		uint64_t start;
	} refused[64]; /* adopted agents refused and killed (a ring) */
	unsigned n_refused;
	/* The largest first call (in both units) of an agent of each command, and of any: what
	 * the next agent's first call is predicted to cost (enforce_launch_estimate). */
	struct amount first_call[LEDGER_MAX_COMMANDS];
	struct amount first_call_any;
	/* Models the price table lacks, warned about once each. */
	char unpriced[8][METER_MODEL_LEN];
	unsigned n_unpriced;
};

uint64_t sup_now_ms(void);

/* The live line is redrawn in place; anything else printed must first wipe it. */
void sup_clear_live(struct sup *s);
void sup_draw_live(struct sup *s);

/* epoll registration of a watch (EPOLLIN). */
bool sup_watch(struct sup *s, struct watch *w);
void sup_unwatch(struct sup *s, struct watch *w);

/* agents.c */
int agent_by_pid(struct sup *s, pid_t pid);
void agents_hello(struct sup *s, struct conn *c, const struct proto_msg *m, int listener);
void agents_exit_message(struct sup *s, struct conn *c, int status);
/* A process under a listener that did not register: an agent by what it runs is adopted
 * (metered from /proc, or refused). Returns its index, or -1 for a non-agent. */
int agents_adopt(struct sup *s, pid_t tgid);
/* The scan found an agent outside every listener that did not register: is it one, and its
 * verdict (block mode kills it, warn mode lists it as unmetered). */
bool agents_unseen_is_agent(struct sup *s, pid_t pid);
void agents_unseen(struct sup *s, pid_t pid);
void agents_end(struct sup *s, int idx, int exit_code);
bool agents_running(const struct sup *s);
void agents_free(struct sup *s);
void tid_forget_tgid(struct sup *s, pid_t tgid);
/* Which agent a notifying thread belongs to (-1: not an agent); *tgid its process. */
int agent_of_tid(struct sup *s, pid_t tid, pid_t *tgid);
struct source *agents_source(struct sup *s, struct agent *a, pid_t tgid, int fd,
			     const struct stat *st);
/* A sealed ledger fd for a `tbwrap status` client. */
void agents_status_request(struct sup *s, struct conn *c);

/* enforce.c */
void enforce_check(struct sup *s);
void enforce_stop(struct sup *s, struct agent *a, const struct ledger_refusal *why);
void enforce_stop_blind(struct sup *s, struct agent *a, const char *why);
/* A new API request (a write of len bytes) on connection sock: the answer now (0, or an errno),
 * or -1 when it is held (the barrier answers it later). A refused request stops the agent and
 * is answered by the caller like every write of a stopped agent (notify_swallow). */
int enforce_request(struct sup *s, struct agent *a, int lfd, uint64_t id, uint64_t sock,
		    int64_t len);
/* Held requests whose wait is over go (or are refused). */
void enforce_release(struct sup *s, struct agent *a);
void enforce_tick(struct sup *s);
/* An agent whose usage changed (src: the source fed): its calls to the book, its reservation
 * to the ledger, its figures to the report. */
void enforce_usage_changed(struct sup *s, struct agent *a, struct source *src);
/* The agent ended: its requests are over. */
void enforce_agent_end(struct sup *s, struct agent *a);

/* What an agent of command cmd (-1: not known) is admitted with and its first call predicted as:
 * the largest first call of an agent of that command seen so far in the session (else of any
 * command), never less than --estimate (with --estimate auto: the command's p75 from the
 * history, when it has HISTORY_ESTIMATE_MIN_RUNS runs); in USD, those tokens at the table's
 * highest input rate. */
struct amount enforce_launch_estimate(const struct sup *s, int cmd);

/* The meter's price function (struct meter_core.price; ctx is the agent's struct pricing). */
uint64_t enforce_price(void *ctx, const char *model, const struct meter_usage *u, uint64_t cache_1h,
		       bool is_sum);

/* A feed of the agent's sources added delta to its usage, and its cost went up from
 * pusd_before: to the ledger. */
void enforce_record(struct sup *s, struct agent *a, const struct meter_usage *delta,
		    uint64_t pusd_before);

/* notify.c */
void notify_handle(struct sup *s, int lfd);
void notify_respond(struct sup *s, int fd, uint64_t id, int error);
/* Answers a write as if it had been made (val bytes), without making it. */
void notify_respond_value(struct sup *s, int fd, uint64_t id, int64_t val);
/* A stopped agent's socket write of len bytes: answered as made, dropped (-1: EFAULT). */
void notify_swallow(struct sup *s, int lfd, uint64_t id, int64_t len);

/* scan.c */
void scan_tree(struct sup *s);

#endif
