# pgcdc: change data capture from PostgreSQL through Kafka into a PostgreSQL warehouse.
.SUFFIXES:

VERSION    = 0.1.0
PREFIX    ?= /usr/local
BINDIR    ?= $(PREFIX)/bin
MANPREFIX ?= $(PREFIX)/share/man
DATADIR   ?= $(PREFIX)/share/pgcdc
UNITDIR   ?= $(PREFIX)/lib/systemd/system

CC        ?= cc
CFLAGS    ?= -O2 -g
CFLAGS    += -pthread -std=c11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes \
             -Wmissing-prototypes -D_GNU_SOURCE -DPGCDC_VERSION='"$(VERSION)"'
LDFLAGS   += -pthread -Wl,--as-needed
PKGS       = libpq rdkafka
PKG_CFLAGS != pkg-config --cflags $(PKGS) 2>/dev/null || echo -I/usr/include/postgresql
PKG_LIBS   != pkg-config --libs $(PKGS) 2>/dev/null || echo -lpq -lrdkafka
CPPFLAGS  += -Isrc/common $(PKG_CFLAGS)
LDLIBS    += $(PKG_LIBS) -lm

# make SANITIZE=1: AddressSanitizer and UBSan build, in its own object directory
ifeq ($(SANITIZE),1)
CFLAGS    += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS   += -fsanitize=address,undefined
BUILD      = build/san
else
BUILD      = build/opt
endif

TOOLS     := $(filter-out common,$(notdir $(wildcard src/*)))
BINS      := $(addprefix bin/,$(TOOLS))
SCRIPTS   := $(filter-out $(BINS),$(wildcard bin/*))
COMMON_SRC:= $(wildcard src/common/*.c)
COMMON_OBJ:= $(COMMON_SRC:src/%.c=$(BUILD)/%.o)
LIB        = $(BUILD)/libpgcdc.a
MANS      := $(wildcard man/*.1)
MANS5     := $(wildcard man/*.5)
SQL       := $(wildcard sql/*.sql)
UNITS     := $(wildcard systemd/*.service)

all: $(BINS)

$(BUILD)/%.o: src/%.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(LIB): $(COMMON_OBJ)
	$(AR) rcs $@ $(COMMON_OBJ)

.SECONDARY:
.SECONDEXPANSION:
objs_of = $(patsubst src/%.c,$(BUILD)/%.o,$(wildcard src/$(1)/*.c))
bin/%: $$(call objs_of,$$*) $(LIB) build/flags
	@mkdir -p bin
	$(CC) $(LDFLAGS) -o $@ $(filter %.o,$^) $(LIB) $(LDLIBS)

# relink the tools when the flags (SANITIZE) change: objects live apart per build
build/flags: FORCE
	@mkdir -p $(@D)
	@echo '$(CFLAGS) $(LDFLAGS)' | cmp -s - $@ || echo '$(CFLAGS) $(LDFLAGS)' > $@

-include $(shell find build -name '*.d' 2>/dev/null)

# C unit tests of the common library, run by tests/unit.bats
UNIT_TESTS := $(patsubst tests/unit/%.c,build/unit/%,$(wildcard tests/unit/*.c))
unit: $(UNIT_TESTS)
build/unit/%: tests/unit/%.c $(LIB) build/flags
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# jansson is no part of the tools: the JSON benchmark and fuzz test compare the
# scanner with it
JANSSON_CFLAGS != pkg-config --cflags jansson 2>/dev/null || true
JANSSON_LIBS   != pkg-config --libs jansson 2>/dev/null || echo -ljansson
build/bench/jsonbench: tests/bench/jsonbench.c $(LIB) build/flags
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(JANSSON_CFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $< $(LIB) $(JANSSON_LIBS)

# make fuzz: each libFuzzer harness of tests/fuzz for FUZZ_SECONDS; clang only here
FUZZ_SECONDS ?= 60
FUZZ_CC   ?= clang
FUZZ_FLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -std=c11 \
             -D_GNU_SOURCE -Wall -Wextra -Werror -Isrc/common -Isrc/pg-upsert $(PKG_CFLAGS)
FUZZ_JSON := src/common/jsonscan.c src/common/jsonout.c src/common/jsonwalk.c
build/fuzz/jsonscan: tests/fuzz/jsonscan.c $(FUZZ_JSON)
build/fuzz/linereader: tests/fuzz/linereader.c src/common/linereader.c
build/fuzz/event: tests/fuzz/event.c src/pg-upsert/event.c src/common/log.c src/pg-upsert/upsert.h $(FUZZ_JSON)
build/fuzz/%:
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $(filter %.c,$^) $(JANSSON_LIBS)

fuzz:
	./scripts/install-deps fuzz
	$(MAKE) build/fuzz/jsonscan build/fuzz/linereader build/fuzz/event
	tests/fuzz/run $(FUZZ_SECONDS)

deps:
	./scripts/install-deps

# TESTS: the suites to run (default: every tests/*.bats)
check: deps all unit
	tests/run $(TESTS)

demo: deps all
	KAFKA=$(KAFKA) ./scripts/demo $(if $(DURATION),--duration $(DURATION))

bench: deps all
	tests/bench/run

lint-man:
	mandoc -T lint -W warning $(MANS) $(MANS5)

install: all
	mkdir -p $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANPREFIX)/man1 $(DESTDIR)$(MANPREFIX)/man5 \
		$(DESTDIR)$(DATADIR)/sql
	cp -f $(BINS) $(SCRIPTS) $(DESTDIR)$(BINDIR)/
	cp -f $(MANS) $(DESTDIR)$(MANPREFIX)/man1/
	cp -f $(MANS5) $(DESTDIR)$(MANPREFIX)/man5/
	cp -f $(SQL) $(DESTDIR)$(DATADIR)/sql/
	cp -f scripts/pipeline.bash $(DESTDIR)$(DATADIR)/
	mkdir -p $(DESTDIR)$(UNITDIR)
	for u in $(UNITS); do \
		sed 's|/usr/local/bin/|$(BINDIR)/|g' $$u >$(DESTDIR)$(UNITDIR)/$${u##*/}; \
	done

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(BINS) $(SCRIPTS)))
	rm -f $(addprefix $(DESTDIR)$(MANPREFIX)/man1/,$(notdir $(MANS)))
	rm -f $(addprefix $(DESTDIR)$(MANPREFIX)/man5/,$(notdir $(MANS5)))
	rm -rf $(DESTDIR)$(DATADIR)
	rm -f $(addprefix $(DESTDIR)$(UNITDIR)/,$(notdir $(UNITS)))

clean:
	rm -rf build $(BINS)

FORCE:
.PHONY: all unit fuzz deps check demo bench lint-man install uninstall clean FORCE
