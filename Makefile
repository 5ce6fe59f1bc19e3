# tbwrap — token budgets for AI coding agents.
#
#   make            build build/tbwrap and build/libtbwrap.so
#   make check      install what is missing, build, run every test (unit, ASan/UBSan, shell, e2e)
#   make bench      benchmarks (tests/bench), ratios printed side by side with their baselines
#   make demo       the main scene: real Claude Code instances under budgets, live bars
#   make install    PREFIX (default /usr/local) and DESTDIR as usual; make uninstall
#
# Strict everywhere: the same warnings-as-errors flags for the library, the launcher and tests.

BUILD   ?= build
CC      ?= cc
PREFIX  ?= /usr/local
DESTDIR ?=
BINDIR  := $(PREFIX)/bin
LIBDIR  := $(PREFIX)/lib/tbwrap
MANDIR  := $(PREFIX)/share/man/man1
COMPDIR := $(PREFIX)/share/bash-completion/completions
PKGS    := libseccomp libcjson sqlite3 yaml-0.1
# What libtbwrap.so links: it is loaded into every process under tbwrap, so not the history's
# SQLite nor the profiles' YAML parser (only the launcher uses those).
PRELOAD_PKGS := libseccomp libcjson
SAN     ?=

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
PRELOAD_PKG_LIBS := $(shell pkg-config --libs $(PRELOAD_PKGS) 2>/dev/null)
CMOCKA_LIBS := $(shell pkg-config --libs cmocka 2>/dev/null)

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	-Wno-format-nonliteral -Wvla -Wpointer-arith -Wundef
OPT  := -O2 -g
ifeq ($(SAN),1)
OPT  := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
SANLD := -fsanitize=address,undefined
endif
CFLAGS_ALL := -std=gnu11 $(OPT) $(WARN) -D_GNU_SOURCE -fPIC -fvisibility=hidden \
	-Iinclude $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(SANLD) $(LDFLAGS)

COMMON_SRC   := $(wildcard common/*.c)
PRELOAD_SRC  := $(wildcard preload/*.c)
LAUNCHER_SRC := $(wildcard launcher/*.c)
UNIT_SRC     := $(wildcard tests/unit/test_*.c)
HELPER_SRC   := $(filter-out tests/helpers/preload_%.c,$(wildcard tests/helpers/*.c))
# Helpers named preload_NAME.c are shared libraries (NAME.so) that tests preload.
HELPER_SO_SRC := $(wildcard tests/helpers/preload_*.c)
BENCH_SRC    := $(wildcard tests/bench/*.c)
HEADERS      := $(wildcard include/tbwrap/*.h)
# Private headers of the preload and the supervisor: every object depends on them too (a struct
# that grew must never be allocated by an object built against the old one).
PRIVATE_HEADERS := $(wildcard launcher/*.h preload/*.h)

COMMON_OBJ   := $(COMMON_SRC:%.c=$(BUILD)/%.o)
PRELOAD_OBJ  := $(PRELOAD_SRC:%.c=$(BUILD)/%.o)
# The launcher's main() lives in launcher/main.c; everything else there is linkable into tests.
# The built-in price table (data/prices.txt) is assembled in: launcher/prices_data.S.
LAUNCHER_LIB_OBJ := $(filter-out $(BUILD)/launcher/main.o,$(LAUNCHER_SRC:%.c=$(BUILD)/%.o)) \
	$(BUILD)/launcher/prices_data.o
UNIT_BIN     := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
HELPER_BIN   := $(patsubst tests/helpers/%.c,$(BUILD)/tests/helpers/%,$(HELPER_SRC)) \
	$(patsubst tests/helpers/preload_%.c,$(BUILD)/tests/helpers/%.so,$(HELPER_SO_SRC))
BENCH_BIN    := $(BENCH_SRC:tests/bench/%.c=$(BUILD)/bench/%)

.PHONY: all check unit bench demo clean deps format format-check helpers install uninstall FORCE
.DELETE_ON_ERROR:

all: $(BUILD)/tbwrap $(BUILD)/libtbwrap.so

$(BUILD)/%.o: %.c $(HEADERS) $(PRIVATE_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -c $< -o $@

# tbwrap --version: the release (VERSION) and the commit it was built from. The header is
# rewritten only when either changed, so that a rebuild at the same commit rebuilds nothing.
GIT_COMMIT = $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell \
	git diff --quiet HEAD -- 2>/dev/null || echo -modified)
$(BUILD)/gen/version.h: VERSION FORCE
	@mkdir -p $(dir $@)
	@printf '#define TBWRAP_VERSION "%s"\n#define TBWRAP_COMMIT "%s"\n' \
		"$$(cat VERSION)" "$(GIT_COMMIT)" >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi

$(BUILD)/launcher/main.o: launcher/main.c $(BUILD)/gen/version.h $(HEADERS) $(PRIVATE_HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -I$(BUILD)/gen -include version.h -c $< -o $@

$(BUILD)/launcher/prices_data.o: launcher/prices_data.S data/prices.txt
	@mkdir -p $(dir $@)
	$(CC) -c $< -o $@

$(BUILD)/libtbwrap.so: $(PRELOAD_OBJ) $(COMMON_OBJ)
	$(CC) -shared -Wl,-z,defs -Wl,-z,now -o $@ $^ $(LDFLAGS_ALL) $(PRELOAD_PKG_LIBS) -ldl -lpthread

$(BUILD)/tbwrap: $(BUILD)/launcher/main.o $(LAUNCHER_LIB_OBJ) $(COMMON_OBJ)
	$(CC) -o $@ $^ $(LDFLAGS_ALL) $(PKG_LIBS) -lpthread -lm

$(BUILD)/tests/%: tests/unit/%.c $(COMMON_OBJ) $(LAUNCHER_LIB_OBJ) $(HEADERS) $(wildcard tests/unit/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(COMMON_OBJ) $(LAUNCHER_LIB_OBJ) $(LDFLAGS_ALL) $(PKG_LIBS) \
		$(CMOCKA_LIBS) -lpthread -lm

# Helpers named static_*.c are linked statically: programs the preload library cannot enter.
$(BUILD)/tests/helpers/static_%: tests/helpers/static_%.c
	@mkdir -p $(dir $@)
	$(CC) -std=gnu11 -O2 $(WARN) -D_GNU_SOURCE -static -o $@ $<

$(BUILD)/tests/helpers/%.so: tests/helpers/preload_%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -shared -Wl,-z,defs -o $@ $< $(LDFLAGS_ALL) -ldl

# option_arity prints the option table of common/agent.c: it links that very object.
$(BUILD)/tests/helpers/option_arity: tests/helpers/option_arity.c $(BUILD)/common/agent.o $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(BUILD)/common/agent.o $(LDFLAGS_ALL)

$(BUILD)/tests/helpers/%: tests/helpers/%.c $(HEADERS) $(wildcard tests/helpers/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LDFLAGS_ALL) -lpthread

$(BUILD)/bench/%: tests/bench/%.c $(COMMON_OBJ) $(LAUNCHER_LIB_OBJ) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -O3 -o $@ $< $(COMMON_OBJ) $(LAUNCHER_LIB_OBJ) $(LDFLAGS_ALL) $(PKG_LIBS) \
		-lpthread -lm

unit: $(UNIT_BIN)
helpers: $(HELPER_BIN)

deps:
	scripts/install-deps

check: deps
	scripts/run-tests

bench: deps all $(BENCH_BIN) $(HELPER_BIN)
	scripts/run-bench

demo: deps
	scripts/demo

FORMATTED := $(COMMON_SRC) $(PRELOAD_SRC) $(LAUNCHER_SRC) $(wildcard launcher/*.h) $(UNIT_SRC) \
	$(wildcard tests/unit/*.h) $(HELPER_SRC) $(HELPER_SO_SRC) $(BENCH_SRC) $(HEADERS) \
	$(wildcard preload/*.h)

format:
	clang-format -i $(FORMATTED)

format-check:
	clang-format --dry-run -Werror $(FORMATTED)

# The launcher finds the library at ../lib/tbwrap/libtbwrap.so from its own path.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(MANDIR) $(DESTDIR)$(COMPDIR)
	install -m 755 $(BUILD)/tbwrap $(DESTDIR)$(BINDIR)/tbwrap
	install -m 644 $(BUILD)/libtbwrap.so $(DESTDIR)$(LIBDIR)/libtbwrap.so
	install -m 644 docs/tbwrap.1 $(DESTDIR)$(MANDIR)/tbwrap.1
	install -m 644 scripts/tbwrap.bash-completion $(DESTDIR)$(COMPDIR)/tbwrap

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/tbwrap $(DESTDIR)$(LIBDIR)/libtbwrap.so \
		$(DESTDIR)$(MANDIR)/tbwrap.1 $(DESTDIR)$(COMPDIR)/tbwrap
	-rmdir $(DESTDIR)$(LIBDIR) 2>/dev/null

clean:
	rm -rf build build-asan
